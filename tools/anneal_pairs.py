"""One training run per seed, ended two ways: ``train.schedule`` plateau and anneal on the same nine epochs.

    python tools/anneal_pairs.py --seeds 1 [--device cpu --precision auto]
                                 [--output reports/anneal_pairs_cpu.json]

``anneal`` holds ``train.learning_rate`` until the last epoch, and so does ``plateau`` in the
default run (its dev loss falls every epoch, so the rate never halves). Until the last epoch
the two are then the same run, step for step, and training both from scratch would spend
twenty epochs to learn what one last epoch decides, and mix in the spread between two runs.
Here each seed trains its first ``train.epochs - 1`` epochs once, with ``plateau``; the saved
state after them is resumed twice through ``train.run``: once with ``plateau`` for its last
epoch, once with ``anneal`` (the state's fingerprint is rewritten for the anneal params, which
differ in ``schedule`` alone). A resumed epoch draws the same batches and augmentations as an
unbroken one. Each pair is scored like ``tools/augment_train.py``'s groups: greedy CER on the
dev/test splits and the unseen-voice factor sets. A seed whose rate had fallen by the end of the shared epochs
is reported as such (``rate_fell``): there ``anneal`` from scratch would not be this branch.
About 11 epochs of training a seed (45 min on 2 cores, 2 min on an H100).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from augment_train import best_model, command_line, score
from unseen_voice_factors import build_factor_sets

from speechquant.batching import UtteranceSet
from speechquant.corpus import synth
from speechquant.features import FeatureOptions
from speechquant.hardware import hardware_stamp
from speechquant.model import ModelOptions, load_checkpoint, save_checkpoint
from speechquant.params import build, load_params, section
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store
from speechquant.train import TrainOptions, choose_device, fingerprint, run


def branch_state(source: Path, destination: Path, key: dict[str, str]) -> None:
    """Copy a saved training state so that a run with other params (whose fingerprint is ``key``) resumes it."""
    destination.mkdir(parents=True)
    state = load_checkpoint(source / "last.pt")
    save_checkpoint(destination / "last.pt", {**state, "fingerprint": key})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="train.seed values, one pair each")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="auto: the params' own")
    parser.add_argument("--utterances", type=int, default=240, help="per unseen-voice factor set")
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, default=Path("reports/anneal_pairs_cpu.json"))
    args = parser.parse_args()
    params = load_params()
    model_options = build(ModelOptions, section(params, "model"), "model")
    train_section = {**section(params, "train"), "device": args.device, "precision": args.precision}
    plateau = build(TrainOptions, {**train_section, "schedule": "plateau"}, "train")
    device = choose_device(plateau)
    train_store, dev_store = Store(args.features / "train"), Store(args.features / "dev")
    config = model_options.config(n_mels=train_store.meta["n_mels"])
    scored = {split: UtteranceSet(Store(args.features / split)) for split in ALL_SPLITS if split != "train"}
    synth_options = build(synth.SynthOptions, section(params, "data.synth"), "data.synth")
    feature_options = build(FeatureOptions, section(params, "features"), "features")
    report = {
        "command": command_line(args, "tools/anneal_pairs.py"),
        "train": {**dataclasses.asdict(plateau), "device": device.type},
        "machine": {**hardware_stamp(), **({"gpu": torch.cuda.get_device_name()} if device.type == "cuda" else {})},
        "seeds": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        factor_sets, _ = build_factor_sets(synth_options, feature_options, args.utterances, folder / "factors")
        for seed in args.seeds:
            started = time.perf_counter()
            shared = dataclasses.replace(plateau, seed=seed, epochs=plateau.epochs - 1)
            trainer = run(config, shared, train_store, dev_store, folder / f"{seed}_shared")
            shared_seconds = time.perf_counter() - started
            entry: dict = {
                "shared_epochs": shared.epochs,
                "shared_seconds": round(shared_seconds, 1),
                "rate_fell": any(e["learning_rate"] != plateau.learning_rate for e in trainer.history),
                "dev_cer_per_epoch": [round(e["dev_cer"], 4) for e in trainer.history],
            }
            for schedule in ("plateau", "anneal"):
                options = dataclasses.replace(plateau, seed=seed, schedule=schedule)
                state = folder / f"{seed}_{schedule}"
                branch_state(folder / f"{seed}_shared", state, fingerprint(options, config, [train_store, dev_store]))
                branch_started = time.perf_counter()
                ended = run(config, options, train_store, dev_store, state)
                model = best_model(ended, dev_store.meta, model_options.preset, state / "model.pt", device)
                entry[schedule] = {
                    "last_epoch_seconds": round(time.perf_counter() - branch_started, 1),
                    "last_epoch_dev_cer": round(ended.history[-1]["dev_cer"], 4),
                    **score(model, scored, factor_sets, options, device),
                }
            entry["anneal_vs_plateau"] = {
                split: round(entry["anneal"]["cer"][split] / entry["plateau"]["cer"][split] - 1, 4)
                for split in entry["plateau"]["cer"]
            }
            report["seeds"][str(seed)] = entry
            print(seed, json.dumps(entry["anneal_vs_plateau"]), flush=True)
            args.output.write_text(json.dumps(report, indent=1, default=str) + "\n")
            for path in folder.glob(f"{seed}_*"):
                shutil.rmtree(path)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
