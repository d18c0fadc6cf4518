"""Where training leaves the model: a few hundred more steps at the training's learning rate, and lower.

    python tools/train_end_lr.py [--steps 200] [--output reports/train_end_lr.json]

The train stage lowers its learning rate only when dev loss stops falling (``ReduceLROnPlateau``);
in the default run it falls every epoch, so all 10 epochs run at ``train.learning_rate`` and the
model is wherever the last steps at that rate left it. Two facts point there: two trainings
that differ only in ``train.seed`` land up to 16 % apart on test (``reports/tempo_seeds_h100.json``),
and the quantize stage's 200 QAT steps at a twentieth of the rate gain 16 % on test. Whether
that gain is more training or the lower rate, this tool tells: from the pipeline's trained
model (``models/model.pt``), the same ``--steps`` steps on the same batches, with the training's
own SpecAugment and tempo changes and precision, at three schedules:

* ``same_rate``: ``train.learning_rate`` throughout, what an eleventh epoch would do;
* ``lower_rate``: QAT's rate throughout (``quant.qat.learning_rate``, 1e-4, a twentieth);
* ``cosine``: from ``train.learning_rate`` along a cosine to zero, the compress stage's schedule.

Each is scored by greedy CER (PyTorch, as the train stage's dev CER) on dev, test and both
out-of-domain dev sets, beside the trained model's own, so that what a lower rate gains
in-domain can be told from what it gains under shift. The optimizer is a fresh AdamW without
weight decay (the training's state is discarded after the stage), as the other fine-tunes
here. About 10 minutes on the 2-core AMD EPYC.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from augment_ablation import cosine, fine_tune

from speechquant.batching import UtteranceSet
from speechquant.hardware import hardware_stamp
from speechquant.lock import file_md5
from speechquant.model import load_model
from speechquant.params import build, load_params, section
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store
from speechquant.train import TrainOptions, evaluate


def schedules(learning_rate: float, lower: float, steps: int) -> dict[str, Callable[[int], float]]:
    """Name: the learning rate at each step."""
    return {
        "same_rate": lambda step: learning_rate,
        "lower_rate": lambda step: lower,
        "cosine": cosine(learning_rate, steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, default=Path("reports/train_end_lr.json"))
    args = parser.parse_args()
    params = load_params()
    options = build(TrainOptions, {**section(params, "train"), "device": "cpu"}, "train")
    train = UtteranceSet(Store(args.features / "train"))
    scored = {split: UtteranceSet(Store(args.features / split)) for split in ALL_SPLITS if split != "train"}
    cpu = torch.device("cpu")

    def greedy_cers(model: torch.nn.Module) -> dict[str, float]:
        return {split: round(evaluate(model, data, options, cpu)[1], 4) for split, data in scored.items()}

    results = {"trained": {"cer": greedy_cers(load_model(args.model))}}
    print("trained", results["trained"], flush=True)
    lower = float(section(params, "quant.qat")["learning_rate"])
    for name, rate in schedules(options.learning_rate, lower, args.steps).items():
        started = time.perf_counter()
        model = load_model(args.model)
        fine_tune(model, train, options, args.steps, rate, options.tempo)
        cers = greedy_cers(model)
        results[name] = {
            "learning_rate": {"first": rate(0), "last": rate(args.steps - 1)},
            "seconds": round(time.perf_counter() - started, 1),
            "cer": cers,
            "of_trained": {split: round(cer / results["trained"]["cer"][split] - 1, 4) for split, cer in cers.items()},
        }
        print(name, json.dumps(results[name]), flush=True)
    report = {
        "command": f"python tools/train_end_lr.py --steps {args.steps}",
        "model_md5": file_md5(args.model),
        "train": {"learning_rate": options.learning_rate, "precision": options.precision, "seed": options.seed},
        "steps": args.steps,
        "machine": hardware_stamp(),
        "schedules": results,
    }
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
