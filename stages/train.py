"""DVC stage `train`: fit Wav2Letter with CTC; resumes from models/train_state after a kill.

Run it data-parallel with torchrun, e.g. two CPU processes:
    torchrun --standalone --nproc-per-node 2 stages/train.py
"""

import argparse
import time
from pathlib import Path

from dvclive import Live

from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_json
from speechquant.model import ModelOptions, parameter_count
from speechquant.modelcard import ModelCard
from speechquant.params import build, load_params, section
from speechquant.store import Store
from speechquant.train import TrainOptions, discard_state, run, save_model, training_metrics


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
    train_store, dev = Store(args.features / "train"), Store(args.features / "dev")
    config = model_options.config(n_mels=train_store.meta["n_mels"])
    started = time.perf_counter()
    live = Live(str(args.live), dvcyaml=False, save_dvc_exp=False, report=None)

    def log(entry: dict) -> None:
        live.log_metric("train/loss", entry["train_loss"])
        live.log_metric("dev/loss", entry["dev_loss"])
        live.log_metric("dev/cer", entry["dev_cer"])
        live.log_metric("learning_rate", entry["learning_rate"])
        live.next_step()

    trainer = run(config, options, train_store, dev, args.state, log)
    if trainer.distributed.rank != 0:
        return
    live.end()
    card = ModelCard.for_training(dev.meta, config.normalization, model_options.preset, parameter_count(trainer.model))
    save_model(trainer, args.model, card.as_dict())
    write_json(args.metrics, training_metrics(trainer, model_options.preset, time.perf_counter() - started))
    discard_state(args.state)


if __name__ == "__main__":
    exit_on_user_error(main)
