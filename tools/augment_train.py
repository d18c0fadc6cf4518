"""Training conditions at the full training budget: the default model trained from scratch per group.

    python tools/augment_train.py [--groups base speed speed_wide_reverb] [--device cuda]
                                  [--output reports/augment_train_h100.json]
    python tools/augment_train.py --groups base tempo_fast tempo_wide tempo_0.8 tempo tempo_0.65 \
                                  --device cuda --output reports/tempo_h100.json
    python tools/augment_train.py --groups base tempo --seeds 1 2 3 --device cuda \
                                  --output reports/tempo_seeds_h100.json
    python tools/augment_train.py --groups tempo_cosine tempo_anneal --device cpu --precision bf16 \
                                  --trained models/model.pt --output reports/schedule_cpu.json
    python tools/augment_train.py --groups tempo_0.8_reverb_0.6 --device cpu --precision bf16 \
                                  --trained models/model.pt --output reports/augment_train_xeon_amx.json

``tools/augment_ablation.py`` can afford on 2 cores only a fine-tune of the trained model per
group; whether a condition teaches what the out-of-domain sets test needs the whole training
run, which takes 47 min on 2 cores but under 2 min on one H100. So each group here builds its
own training split (``data.synth`` with the group's ``augment`` entries replaced; ``base``
uses ``--features``'s own), trains the train stage's model with the ``train`` params (device,
precision and the group's ``tempo`` entries replaced; every group but the ``tempo`` ones
trains without tempo changes, as all did before ``train.tempo`` existed; ``tempo_cosine`` and
``tempo_anneal`` also replace ``train.schedule``), and scores it by
greedy CER on the four dev/test sets and on ``tools/unseen_voice_factors.py``'s sets, so
that each held-out condition's cost can be seen to move or not. A GPU run differs from the
CPU's in its last digits, so groups are compared with ``base`` trained alike, never with the
pipeline's model (``--trained`` scores that too, to compare a CPU run in the pipeline's precision
with it). One run per group cannot tell a condition's effect from the run's own spread
(initialisation, batch order, augmentation draws all follow ``train.seed``): ``--seeds`` trains
every group once per seed, seed by seed, so that a cut-short run still holds whole pairs. The
report is rewritten after every run, so a run stopped by a time limit keeps what it finished.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from unseen_voice_factors import build_factor_sets

from speechquant.batching import UtteranceSet
from speechquant.corpus import synth
from speechquant.features import FeatureOptions, build_split
from speechquant.hardware import hardware_stamp
from speechquant.lock import file_md5
from speechquant.model import ModelOptions, load_model, parameter_count
from speechquant.modelcard import ModelCard
from speechquant.params import build, load_params, section
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store
from speechquant.train import Trainer, TrainOptions, choose_device, evaluate, run, save_model

NO_TEMPO = {"probability": 0.0}
GROUPS = {  # name: data.synth.augment, train.tempo and other train entries that replace the params' own
    "base": {"tempo": NO_TEMPO},
    "speed": {"augment": {"speed": {"probability": 0.5, "factor": [0.9, 1.1]}}, "tempo": NO_TEMPO},
    "speed_wide_reverb": {
        "augment": {
            "speed": {"probability": 0.5, "factor": [0.8, 1.25]},
            "reverb": {"probability": 0.5, "rt60_s": [0.2, 0.6]},
        },
        "tempo": NO_TEMPO,
    },
    "tempo_fast": {"tempo": {"probability": 0.5, "factor": [0.7, 1.0]}},
    "tempo_wide": {"tempo": {"probability": 0.5, "factor": [0.65, 1.15]}},
    "tempo": {"tempo": {"probability": 0.5, "factor": [0.6, 1.0]}},  # the params' since
    "tempo_0.65": {"tempo": {"probability": 0.65, "factor": [0.6, 1.0]}},
    "tempo_0.8": {"tempo": {"probability": 0.8, "factor": [0.6, 1.0]}},
    "tempo_cosine": {"tempo": {"probability": 0.5, "factor": [0.6, 1.0]}, "train": {"schedule": "cosine"}},
    "tempo_anneal": {"tempo": {"probability": 0.5, "factor": [0.6, 1.0]}, "train": {"schedule": "anneal"}},
    "tempo_0.8_reverb_0.6": {  # the two held-out factors that training conditions moved, both pushed further
        "augment": {"reverb": {"probability": 0.6, "rt60_s": [0.2, 0.6]}},
        "tempo": {"probability": 0.8, "factor": [0.6, 1.0]},
    },
}


def training_split(params: dict, augment: dict, feature_options: FeatureOptions, features: Path, folder: Path) -> Store:
    """The training features for a group: ``features/train`` for none, else a split built with ``augment``."""
    if not augment:
        return Store(features / "train")
    synth_section = copy.deepcopy(section(params, "data.synth"))
    for condition, entries in augment.items():
        synth_section["augment"][condition] = {**synth_section["augment"].get(condition, {}), **entries}
    options = build(synth.SynthOptions, synth_section, "data.synth")
    synth.build_split(options, "train", folder / "audio", workers=os.cpu_count() or 1)
    build_split(folder / "audio", folder / "train", feature_options)
    return Store(folder / "train")


def score(
    model: torch.nn.Module,
    scored: dict[str, UtteranceSet],
    factor_sets: dict[str, UtteranceSet],
    options: TrainOptions,
    device: torch.device,
) -> dict[str, dict[str, float]]:
    """Greedy CER on every dev/test split and unseen-voice factor set, and each as a multiple of its reference."""
    cers = {split: round(evaluate(model, data, options, device)[1], 4) for split, data in scored.items()}
    factors = {factor: round(evaluate(model, data, options, device)[1], 4) for factor, data in factor_sets.items()}
    return {
        "cer": cers,
        "of_dev": {split: round(cer / cers["dev"], 3) for split, cer in cers.items()},
        "factors": factors,
        "factors_of_in_domain": {factor: round(cer / factors["in_domain"], 3) for factor, cer in factors.items()},
    }


def best_model(trainer: Trainer, meta: dict, preset: str, path: Path, device: torch.device) -> torch.nn.Module:
    """The run's best epoch saved at ``path`` as the train stage saves it, and loaded back from there:
    what is scored is what a user of the stage's output would load."""
    card = ModelCard.for_training(meta, trainer.config.normalization, preset, parameter_count(trainer.model))
    save_model(trainer, path, card.as_dict())
    return load_model(path).to(device)


def command_line(args: argparse.Namespace, script: str = "tools/augment_train.py") -> str:
    """The command that repeats a run of ``script``, lists written as the shell takes them."""
    words = [f"python {script}"]
    for key, value in vars(args).items():
        if value:
            words.append(f"--{key} " + (" ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="fp32: faster on an H100")
    parser.add_argument("--epochs", type=int, help="instead of train.epochs (a quick look only)")
    parser.add_argument("--seeds", type=int, nargs="+", help="train.seed values, one run per group each")
    parser.add_argument("--utterances", type=int, default=240, help="per unseen-voice factor set")
    parser.add_argument(
        "--features", type=Path, default=Path("data/features"), help="base's training split, and the scored splits"
    )
    parser.add_argument(
        "--trained", type=Path, help="also score this model alike (the pipeline's models/model.pt), as row `trained`"
    )
    parser.add_argument("--output", type=Path, default=Path("reports/augment_train.json"))
    args = parser.parse_args()
    params = load_params()
    model_options = build(ModelOptions, section(params, "model"), "model")
    replaced = {"device": args.device, "precision": args.precision, **({"epochs": args.epochs} if args.epochs else {})}
    train_section = {**section(params, "train"), **replaced}
    params_options = build(TrainOptions, train_section, "train")  # checked once; groups replace only tempo
    device = choose_device(params_options)
    dev_store = Store(args.features / "dev")
    scored = {split: UtteranceSet(Store(args.features / split)) for split in ALL_SPLITS if split != "train"}
    synth_options = build(synth.SynthOptions, section(params, "data.synth"), "data.synth")
    feature_options = build(FeatureOptions, section(params, "features"), "features")
    report = {
        "command": command_line(args),
        "train": {**dataclasses.asdict(params_options), "device": device.type},
        "machine": {**hardware_stamp(), **({"gpu": torch.cuda.get_device_name()} if device.type == "cuda" else {})},
    }
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        factor_sets, _ = build_factor_sets(synth_options, feature_options, args.utterances, folder / "factors")
        if args.trained:
            model = load_model(args.trained).to(device)
            results["trained"] = {
                "model": str(args.trained),
                "model_md5": file_md5(args.trained),
                **score(model, scored, factor_sets, params_options, device),
            }
            print("trained", json.dumps(results["trained"]), flush=True)
        train_stores: dict[str, Store] = {}
        runs = [(group, seed) for seed in args.seeds or [None] for group in args.groups]
        for group, seed in runs:
            started = time.perf_counter()
            augment, tempo = GROUPS[group].get("augment", {}), GROUPS[group]["tempo"]
            if group not in train_stores:
                train_stores[group] = training_split(params, augment, feature_options, args.features, folder / group)
            train_store = train_stores[group]
            corpus_seconds = time.perf_counter() - started
            tempo_section = {**train_section.get("tempo", {}), **tempo}
            seeded = {
                **train_section,
                "tempo": tempo_section,
                **GROUPS[group].get("train", {}),
                **({"epochs": args.epochs} if args.epochs else {}),  # a quick look overrides a group's too
                **({"seed": seed} if seed is not None else {}),
            }
            train_options = build(TrainOptions, seeded, "train")
            config = model_options.config(n_mels=train_store.meta["n_mels"])
            name = group if seed is None else f"{group}/seed{seed}"
            trainer = run(config, train_options, train_store, dev_store, folder / f"{group}_{seed}_state")
            model = best_model(trainer, dev_store.meta, model_options.preset, folder / f"{group}_{seed}.pt", device)
            results[name] = {
                "augment": augment,
                "tempo": tempo_section,
                "schedule": train_options.schedule,
                "epochs": train_options.epochs,
                "seed": train_options.seed,
                "corpus_seconds": round(corpus_seconds, 1),
                "train_seconds": round(time.perf_counter() - started - corpus_seconds, 1),
                "dev_cer_per_epoch": [round(entry["dev_cer"], 4) for entry in trainer.history],
                **score(model, scored, factor_sets, train_options, device),
            }
            print(name, json.dumps(results[name]), flush=True)
            args.output.write_text(json.dumps({**report, "groups": results}, indent=1, default=str) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
