"""Run a tiny training in its own process (for torchrun and kill -9 tests).

usage: train_script.py DATA_DIR STATE_DIR OUTPUT [kill] [no-augment] [batch-norm]
With ``kill``, the process SIGKILLs itself in the middle of the second epoch; with
``batch-norm``, the model has batch norm as the default preset does.
"""

import os
import signal
import sys
from pathlib import Path

import torch

from speechquant import train
from speechquant.model import ModelConfig
from speechquant.store import Store

CONFIG = ModelConfig(hidden_channels=16, wide_channels=32, batch_norm=False, dropout=0.1)
OPTIONS = train.TrainOptions(seed=3, epochs=3, batch_frames=1000, precision="fp32", device="cpu")


def main() -> None:
    data, state, output = (Path(argument) for argument in sys.argv[1:4])
    options = OPTIONS
    if "no-augment" in sys.argv:
        options = train.TrainOptions(**{**OPTIONS.__dict__, "spec_augment": train.SpecAugmentOptions(0, 0, 0, 0)})
    config = ModelConfig(**{**CONFIG.as_dict(), "dropout": 0.0}) if "no-augment" in sys.argv else CONFIG
    if "batch-norm" in sys.argv:
        config = ModelConfig(**{**config.as_dict(), "batch_norm": True})
    if "kill" in sys.argv:
        original = train.Trainer._local_positions
        calls = []

        def kill_mid_second_epoch(self, positions):  # called once per batch
            if len(self.history) == 1:
                calls.append(1)
                if len(calls) == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(self, positions)

        train.Trainer._local_positions = kill_mid_second_epoch
    trainer = train.run(config, options, Store(data / "train"), Store(data / "dev"), state)
    if trainer.distributed.rank == 0:
        torch.save({"state_dict": trainer.model.state_dict(), "history": trainer.history}, output)


if __name__ == "__main__":
    main()
