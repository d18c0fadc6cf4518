"""Would another fine-tuning recipe close the compressed model's gap, with the control tuned as hard?

    python tools/compress_recipe.py --loop rate_and_rank   # about 20 min on 2 cores (Xeon with AMX)
    python tools/compress_recipe.py --readme-only           # the README's tables again, from the report

The compress stage fine-tunes the compressed model and its control with one recipe (learning
rate, distillation weight). A recipe that suits the compressed model could close its gap, and a
recipe that suits the control better would widen it: the fair comparison gives each model its
own best. Here every model of a loop gets its own learning rate, distillation weight and ranks,
and all of them take their steps in one loop on the same batches with one teacher pass (the
stage's loop takes one recipe for all, so this tool runs its own, with the stage's loss, clip and
cosine). Each model is scored by greedy CER on dev (PyTorch fp32) and compared with its reference
control by a paired bootstrap over dev's utterances; test is never read here.

The report (``reports/compress_recipe.json``) keeps one entry per loop; ``--loop`` measures one
and leaves the others. It writes its tables into README.md between its markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from compress_sweep import compress_options, readme_with
from torch import nn
from tqdm import tqdm

from speechquant.batching import UtteranceSet
from speechquant.compare import Scored, paired_bootstrap
from speechquant.compress import compressed_model, distillation_loss
from speechquant.ctc import greedy
from speechquant.export import fold_batch_norm
from speechquant.hardware import hardware_stamp, machine_words
from speechquant.lock import file_md5
from speechquant.metrics import char_edits
from speechquant.model import Wav2Letter, load_model, parameter_count
from speechquant.params import load_params
from speechquant.store import Store
from speechquant.train import TrainOptions, autocast, choose_device, cosine_rate, ctc_loss_sum, to_device

RECIPE_BEGIN = "<!-- compress recipe: written by tools/compress_recipe.py from reports/compress_recipe.json -->"
RECIPE_END = "<!-- end of compress recipe -->"
# Per loop, per model: "control" (the uncompressed model) or "compressed" (the stage's compressed
# model, or with other ranks), its recipe, and the control its gap is measured against.
LOOPS: dict[str, dict[str, dict[str, Any]]] = {
    "rate_and_rank": {
        "control": {"kind": "control", "learning_rate": 6e-4, "distill_weight": 0.5},
        "control_rate_1.2e-3": {"kind": "control", "learning_rate": 1.2e-3, "distill_weight": 0.5},
        "compressed": {"kind": "compressed", "learning_rate": 6e-4, "distill_weight": 0.5},
        "compressed_conv8_128": {
            "kind": "compressed",
            "ranks": {"conv0": 64, "conv8": 128},
            "learning_rate": 6e-4,
            "distill_weight": 0.5,
        },
        "compressed_rate_1.2e-3": {"kind": "compressed", "learning_rate": 1.2e-3, "distill_weight": 0.5},
    },
    "lower_rate_and_weight": {
        "control": {"kind": "control", "learning_rate": 6e-4, "distill_weight": 0.5},
        "control_rate_3e-4": {"kind": "control", "learning_rate": 3e-4, "distill_weight": 0.5},
        "compressed_rate_3e-4": {"kind": "compressed", "learning_rate": 3e-4, "distill_weight": 0.5},
        "compressed_weight_0.8": {"kind": "compressed", "learning_rate": 6e-4, "distill_weight": 0.8},
    },
    "less_distillation": {
        "control": {"kind": "control", "learning_rate": 6e-4, "distill_weight": 0.5},
        "control_weight_0.2": {"kind": "control", "learning_rate": 6e-4, "distill_weight": 0.2},
        "compressed_weight_0.2": {"kind": "compressed", "learning_rate": 6e-4, "distill_weight": 0.2},
        "compressed_weight_0": {"kind": "compressed", "learning_rate": 6e-4, "distill_weight": 0.0},
    },
}
REFERENCE = "control"  # the stage's recipe when the loops ran (distillation 0.5, now 0.2): every gap is to it


def dev_scores(model: Wav2Letter, dev: UtteranceSet) -> Scored:
    """Greedy per-utterance edits on dev in fp32, in the split's order."""
    model.eval()
    ids, references, hypotheses, edits = [], [], [], []
    with torch.no_grad():
        for positions in dev.batches(8000, 0, epoch=0, shuffle=False):
            batch = dev.collate(positions)
            log_probs, lengths = model(batch.features, batch.lengths)
            log_probs = log_probs.float().numpy()
            for row, index in enumerate(batch.indices):
                reference = dev.store.utterances[index].text
                hypothesis = greedy(log_probs[row], int(lengths[row]))
                ids.append(str(index))
                references.append(reference)
                hypotheses.append(hypothesis)
                edits.append(char_edits(reference, hypothesis))
    characters = np.array([len(text) for text in references], dtype=np.int64)
    return Scored(ids, references, hypotheses, np.array(edits, dtype=np.int64), characters)


def fine_tune_each(
    models: dict[str, Wav2Letter],
    recipes: dict[str, dict[str, Any]],
    teacher: Wav2Letter,
    train: UtteranceSet,
    steps: int,
    batch_frames: int,
    seed: int,
    precision: str,
) -> dict[str, float]:
    """``steps`` AdamW steps for every model on the same batches, each with its own rate and
    distillation weight (the stage's loss, clip and cosine); the seconds each model's steps took."""
    torch.manual_seed(seed)
    settings = TrainOptions(precision=precision, device="cpu", batch_frames=batch_frames)
    device = choose_device(settings)
    optimizers = {
        name: torch.optim.AdamW(model.parameters(), lr=recipes[name]["learning_rate"], weight_decay=0.0)
        for name, model in models.items()
    }
    for model in models.values():
        model.train()
    seconds = dict.fromkeys(models, 0.0)
    endless = (b for epoch in itertools.count() for b in train.batches(batch_frames, seed, epoch, True))
    for step, positions in enumerate(tqdm(itertools.islice(endless, steps), total=steps, desc="fine-tune")):
        batch = to_device(train.collate(positions), device)
        with torch.no_grad(), autocast(settings, device):
            trained, _ = teacher(batch.features, batch.lengths)
        for name, model in models.items():
            started, weight = time.perf_counter(), recipes[name]["distill_weight"]
            with autocast(settings, device):
                log_probs, lengths = model(batch.features, batch.lengths)
            ctc = ctc_loss_sum(log_probs, lengths, batch)
            loss = ((1 - weight) * ctc + weight * distillation_loss(log_probs, trained, lengths)) / len(positions)
            if torch.isfinite(loss):
                for group in optimizers[name].param_groups:
                    group["lr"] = cosine_rate(recipes[name]["learning_rate"], step / steps)
                optimizers[name].zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizers[name].step()
            seconds[name] += time.perf_counter() - started
    return seconds


def measure_loop(name: str, model_path: Path, features: Path, steps: int | None, seed: int | None) -> dict[str, Any]:
    """One loop's models fine-tuned side by side and scored on dev against ``REFERENCE``; ``seed``
    (default ``compress.seed``) sets the batches and the low-rank fit's statistics batches."""
    options = compress_options(load_params(), steps, None if seed is None else {"seed": seed})
    recipes = LOOPS[name]
    train, dev = UtteranceSet(Store(features / "train")), UtteranceSet(Store(features / "dev"))
    teacher = fold_batch_norm(load_model(model_path)).eval()
    models = {
        model: fold_batch_norm(load_model(model_path))
        if recipe["kind"] == "control"
        else compressed_model(teacher, train, dataclasses.replace(options, ranks=recipe.get("ranks", options.ranks)))
        for model, recipe in recipes.items()
    }
    started = time.perf_counter()
    seconds = fine_tune_each(
        models, recipes, teacher, train, options.steps, options.batch_frames, options.seed, options.precision
    )
    loop_seconds = time.perf_counter() - started
    scores = {model: dev_scores(network, dev) for model, network in models.items()}
    rows = {
        model: {
            **recipes[model],
            "parameters": parameter_count(models[model]),
            "fine_tune_seconds": round(seconds[model], 1),
            "dev_cer": round(scores[model].cer(), 5),
            "dev_edits": scores[model].edits.tolist(),
            "vs_control": None if model == REFERENCE else paired_bootstrap(scores[model], scores[REFERENCE], 1000, 0),
        }
        for model in recipes
    }
    return {
        "machine": hardware_stamp(),
        "model_md5": file_md5(model_path),
        "steps": options.steps,
        "seed": options.seed,
        "seconds": round(loop_seconds, 1),  # the loop alone, scoring not included
        "dev_characters": scores[REFERENCE].lengths.tolist(),  # with each model's dev_edits: its bootstrap again
        "models": rows,
    }


def recipe_words(row: dict[str, Any]) -> str:
    """A model's recipe in words."""
    ranks = row.get("ranks")
    shape = "uncompressed" if row["kind"] == "control" else f"ranks {json.dumps(ranks)}" if ranks else "stage's ranks"
    return f"{shape.replace(chr(34), '')}, rate {row['learning_rate']:g}, distillation {row['distill_weight']:g}"


def recipe_block(report: dict[str, Any]) -> str:
    """The README's tables, one per loop, markers included."""
    lines = [RECIPE_BEGIN]
    for name, loop in report["loops"].items():
        lines += [
            "",
            f"Loop `{name}`: {loop['steps']} steps each, seed {loop['seed']}, one loop; dev greedy CER (PyTorch "
            f"fp32), gap to `{REFERENCE}` (the stage's recipe then) with its 95 % paired-bootstrap interval; "
            f"{machine_words(loop['machine'])}, {loop['seconds'] / 60:.0f} min:",
            "",
            "| model | recipe | parameters | dev CER | gap to control |",
            "|---|---|---|---|---|",
        ]
        for model, row in loop["models"].items():
            versus = row["vs_control"]
            gap = (
                "-"
                if versus is None
                else f"{versus['relative_difference'] * 100:+.2f} % "
                f"[{versus['relative_ci95_low'] * 100:+.2f}, {versus['relative_ci95_high'] * 100:+.2f}]"
            )
            cells = [model, recipe_words(row), f"{row['parameters'] / 1e6:.2f} M", f"{row['dev_cer']:.4f}", gap]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", RECIPE_END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop", choices=sorted(LOOPS), help="the loop to measure (the report keeps the others)")
    parser.add_argument("--steps", type=int, help="fine-tuning steps (default: compress.steps)")
    parser.add_argument("--seed", type=int, help="another seed than compress.seed: reported as <loop>_seed<N>")
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, default=Path("reports/compress_recipe.json"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--readme-only", action="store_true", help="write the README tables from --output only")
    args = parser.parse_args()
    report = json.loads(args.output.read_text()) if args.output.exists() else {"loops": {}}
    if not args.readme_only:
        if args.loop is None:
            raise SystemExit("error: --loop is required unless --readme-only; valid: " + ", ".join(sorted(LOOPS)))
        key = args.loop if args.seed is None else f"{args.loop}_seed{args.seed}"
        report["loops"][key] = measure_loop(args.loop, args.model, args.features, args.steps, args.seed)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    args.readme.write_text(
        readme_with(args.readme.read_text(encoding="utf-8"), recipe_block(report), RECIPE_BEGIN, RECIPE_END)
    )


if __name__ == "__main__":
    main()
