"""DVC stage `train`: fit Wav2Letter with CTC; resumes from models/train_state after a kill.

Run it data-parallel with torchrun, e.g. two CPU processes:
    torchrun --standalone --nproc-per-node 2 stages/train.py
"""

import argparse
import time
from pathlib import Path

import torch
from dvclive import Live

from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_json
from speechquant.model import ModelOptions, Wav2Letter, parameter_count
from speechquant.params import build, load_params, section
from speechquant.store import Store
from speechquant.train import TrainOptions, discard_state, run, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--state", type=Path, default=Path("models/train_state"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--live", type=Path, default=Path("dvclive"))
    args = parser.parse_args()
    params = load_params()
    model_options = build(ModelOptions, section(params, "model"), "model")
    options = build(TrainOptions, section(params, "train"), "train")
    config = model_options.config(n_mels=section(params, "features")["n_mels"])
    started = time.perf_counter()
    live = Live(str(args.live), dvcyaml=False, save_dvc_exp=False, report=None)

    def log(entry: dict) -> None:
        live.log_metric("train/loss", entry["train_loss"])
        live.log_metric("dev/loss", entry["dev_loss"])
        live.log_metric("dev/cer", entry["dev_cer"])
        live.log_metric("learning_rate", entry["learning_rate"])
        live.next_step()

    trainer = run(config, options, Store(args.features / "train"), Store(args.features / "dev"), args.state, log)
    if trainer.distributed.rank != 0:
        return
    live.end()
    save_model(trainer, args.model)
    history = trainer.history
    write_json(
        args.metrics,
        {
            "preset": model_options.preset,
            "parameters": parameter_count(Wav2Letter(config)),
            "epochs": len(history),
            "best_epoch": trainer.best["epoch"],
            "best_dev_cer": round(trainer.best["dev_cer"], 5),
            "final_dev_loss": round(history[-1]["dev_loss"], 5),
            "skipped_batches": sum(entry["skipped_batches"] for entry in history),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "train_audio_seconds_per_second": round(
                sum(e["audio_seconds"] for e in history) / sum(e["train_seconds"] for e in history), 1
            ),
            "device": trainer.device.type,
            "precision": options.precision,
            "processes": trainer.distributed.world,
            "threads": torch.get_num_threads(),
        },
    )
    discard_state(args.state)


if __name__ == "__main__":
    exit_on_user_error(main)
