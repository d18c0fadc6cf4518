"""Which training-corpus conditions help: each group on alone, all on, and none, at one training budget.

    python tools/augment_ablation.py [--hours 2] [--epochs 3] [--output reports/augment_ablation.json]

For every group this builds a training corpus of ``--hours`` from ``params.yaml``'s
``data.synth`` with only that group's conditions on (at the probabilities below, or the
params' own where those are above zero), computes its features, trains the default model for
``--epochs`` with the ``train`` params, and scores greedy CER on the pipeline's in-domain dev
and test and on both out-of-domain dev sets (``data/features``, built by `dvc repro features`).
Every run gets the same hours, epochs, seed and evaluation data, so the groups differ only in
their conditions. The budget is a fraction of the pipeline's (10 h, 10 epochs): the table ranks
the groups; the pipeline's own numbers decide the defaults.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import time
from pathlib import Path

from speechquant.batching import UtteranceSet
from speechquant.corpus import synth
from speechquant.features import FeatureOptions, build_split
from speechquant.model import ModelOptions
from speechquant.params import build, load_params, section
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store
from speechquant.train import TrainOptions, choose_device, evaluate, run

ON_PROBABILITY = {"reverb": 0.3, "channel": 0.2, "speed": 0.5, "level": 0.5, "babble": 0.2}
GROUPS = {
    "none": (),
    "reverb": ("reverb",),
    "channel": ("channel",),
    "speed_level": ("speed", "level"),
    "babble": ("babble",),
    "all": tuple(ON_PROBABILITY),
}


def synth_params(params: dict, conditions: tuple[str, ...], hours: float) -> dict:
    """``data.synth`` with only ``conditions`` on and ``hours`` of training audio."""
    synth_section = copy.deepcopy(section(params, "data.synth"))
    synth_section["hours"] = {"train": hours}
    augment = synth_section.setdefault("augment", {})
    for name in ON_PROBABILITY:
        entry = augment.setdefault(name, {})
        entry["probability"] = (entry.get("probability") or ON_PROBABILITY[name]) if name in conditions else 0.0
    return synth_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--features", type=Path, default=Path("data/features"), help="the evaluation splits")
    parser.add_argument("--workdir", type=Path, default=Path("data/ablation"))
    parser.add_argument("--output", type=Path, default=Path("reports/augment_ablation.json"))
    args = parser.parse_args()
    params = load_params()
    train_options = build(TrainOptions, {**section(params, "train"), "epochs": args.epochs}, "train")
    feature_options = build(FeatureOptions, section(params, "features"), "features")
    config = build(ModelOptions, section(params, "model"), "model").config(n_mels=feature_options.n_mels)
    evaluation = {split: UtteranceSet(Store(args.features / split)) for split in ALL_SPLITS if split != "train"}
    budget = {"hours": args.hours, "epochs": args.epochs, "seed": train_options.seed}
    saved = json.loads(args.output.read_text()) if args.output.exists() else {}
    results = saved.get("groups", {}) if saved.get("budget") == budget else {}
    for group in args.groups:
        started = time.perf_counter()
        options = build(synth.SynthOptions, synth_params(params, GROUPS[group], args.hours), "data.synth")
        folder = args.workdir / group
        shutil.rmtree(folder, ignore_errors=True)
        synth.build_split(options, "train", folder / "corpus", workers=os.cpu_count() or 1)
        corpus_seconds = time.perf_counter() - started
        build_split(folder / "corpus", folder / "features", feature_options)
        trainer = run(config, train_options, Store(folder / "features"), evaluation["dev"].store, folder / "state")
        trainer.model.load_state_dict(trainer.best_state)
        device = choose_device(train_options)
        cers = {
            split: round(evaluate(trainer.model, data, train_options, device)[1], 4)
            for split, data in evaluation.items()
        }
        results[group] = {
            "conditions": {name: getattr(options.augment, name).probability for name in ON_PROBABILITY},
            "greedy_cer": cers,
            "corpus_seconds": round(corpus_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
        }
        print(group, json.dumps(results[group]), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"budget": budget, "groups": results}, indent=1) + "\n")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
