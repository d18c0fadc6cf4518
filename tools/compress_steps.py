"""How many fine-tuning steps the compressed model needs to catch its control: the compress stage
at several step counts and seeds, both models scored by greedy CER on dev and test.

    python tools/compress_steps.py --runs 400 800 1600s1 [--device cuda] [--output reports/compress_steps.json]

A run is ``STEPS`` or ``STEPSsSEED`` (seed 0 where not given). Each runs ``compress.compress``
with the pipeline's params (``compress.*``), only the steps, seed and device replaced, from the
pipeline's trained model; greedy CER is the training loop's (``train.evaluate``), without int8
or the beam decoder, so it reads the fine-tuning alone. Rows are written after each run, so a
run stopped early keeps what it measured. Meant for a GPU: 1,600 steps of both models take
about 1 min on an H100 and about 22 min on the 2-core AMD EPYC.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from compress_sweep import compress_options

from speechquant.batching import UtteranceSet
from speechquant.compress import compress
from speechquant.hardware import hardware_stamp
from speechquant.model import load_model
from speechquant.params import load_params
from speechquant.store import Store
from speechquant.train import TrainOptions, choose_device, evaluate

MODELS = ("pruned_fp32", "fp32_finetuned")
SPLITS = ("dev", "test")
EVAL_BATCH_FRAMES = 8000


def parse_run(run: str) -> tuple[int, int]:
    """``"1600s1"`` -> (1600, 1); ``"400"`` -> (400, 0)."""
    steps, _, seed = run.partition("s")
    return int(steps), int(seed or 0)


def measure_run(checkpoint: Path, splits: dict[str, UtteranceSet], options: Any, device_name: str) -> dict[str, Any]:
    """One compress run at ``options``, both models' greedy CER and CTC loss on every split, and the gaps."""
    started = time.perf_counter()
    pruned, control, _ = compress(load_model(checkpoint), splits["train"], splits["dev"], options)
    settings = TrainOptions(precision=options.precision, device=device_name, batch_frames=EVAL_BATCH_FRAMES)
    device = choose_device(settings)
    row: dict[str, Any] = {"steps": options.steps, "seed": options.seed, "device": device.type}
    for name, model in zip(MODELS, (pruned, control), strict=True):
        model.to(device)
        row[name] = {}
        for split in SPLITS:
            loss, cer = evaluate(model, splits[split], settings, device)
            row[name][f"{split}_cer"], row[name][f"{split}_loss"] = round(cer, 5), round(loss, 3)
        model.cpu()
    for split in SPLITS:
        key = f"{split}_cer"
        row[f"gap_{split}"] = round(row["pruned_fp32"][key] / row["fp32_finetuned"][key] - 1, 4)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def machine(device: str) -> dict[str, Any]:
    """The CPU stamp, and the GPU where one ran the fine-tuning."""
    stamp = {**hardware_stamp(), "torch": torch.__version__}
    if device != "cpu" and torch.cuda.is_available():
        stamp["gpu"] = torch.cuda.get_device_name(0)
    return stamp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="STEPS or STEPSsSEED, e.g. 400 1600s1")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, default=Path("reports/compress_steps.json"))
    args = parser.parse_args()
    runs = [parse_run(run) for run in args.runs]
    base = compress_options(load_params(), None)
    splits = {split: UtteranceSet(Store(args.features / split)) for split in ("train", *SPLITS)}
    report: dict[str, Any] = {"machine": machine(args.device), "options": dataclasses.asdict(base), "runs": []}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for steps, seed in runs:
        options = dataclasses.replace(base, steps=steps, seed=seed, device=args.device)
        row = measure_run(args.checkpoint, splits, options, args.device)
        report["runs"].append(row)
        print(json.dumps(row), flush=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
