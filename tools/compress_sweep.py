"""Which compression, by measurement: candidate compressions and the control, fine-tuned in one loop.

    python tools/compress_sweep.py [--steps 400] [--output reports/compress_sweep.json]
    python tools/compress_sweep.py --readme-only   # the README's table again, from the report

It writes its table into README.md between its markers (a test checks the two agree).

Every candidate is made from the pipeline's trained model (``models/model.pt``) the way the
compress stage makes ``pruned_fp32`` (``compress.compressed_model``) and fine-tuned with the
stage's own loop and params (``compress.*``; ``--steps`` overrides the steps), all of them
in one loop beside the uncompressed control: the same batches, the same teacher pass. Each
is scored by greedy CER and CTC loss on dev before and after, and by its gap to the control;
test is never read here (choices are made on dev).

A second loop asks whether a better teacher closes the gap, fairly: the stage's candidate
distilled from the *fine-tuned* control instead of the trained model, beside the fine-tuned
control itself trained on alike (the same teacher, steps and batches), so that the control
gets every step of training the candidate's lineage had.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from speechquant.batching import UtteranceSet
from speechquant.compress import CompressOptions, compressed_model, fine_tune
from speechquant.export import fold_batch_norm
from speechquant.hardware import hardware_stamp, machine_words
from speechquant.lock import file_md5
from speechquant.model import load_model
from speechquant.params import build, load_params, section
from speechquant.store import Store

SWEEP_BEGIN = "<!-- compress sweep: written by tools/compress_sweep.py from reports/compress_sweep.json -->"
SWEEP_END = "<!-- end of compress sweep -->"
CONTROL = "control"
STAGE = "stage_default"  # the candidate the compress stage makes (params.yaml)
CANDIDATES: dict[str, dict[str, Any]] = {  # name: the compress params it changes
    "channels_0.6": {"ratio": 0.6, "ranks": None},
    "conv8_64": {"ranks": {"conv8": 64}},
    "conv8_96": {"ranks": {"conv8": 96}},
    "conv0_48_conv8_112": {"ranks": {"conv0": 48, "conv8": 112}},
    "conv0_64_conv8_128_conv9_128": {"ranks": {"conv0": 64, "conv8": 128, "conv9": 128}},
}


def gaps(measured: dict[str, dict[str, Any]], control: str) -> None:
    """Adds each student's relative dev CER gap to ``control`` after fine-tuning."""
    reference = measured[control]["dev_cer_after"]
    for name, row in measured.items():
        if name != control:
            row["dev_cer_gap_to_control"] = round(row["dev_cer_after"] / reference - 1, 4)


def labelled(
    measured: dict[str, dict[str, Any]], changes: dict[str, dict[str, Any] | None]
) -> dict[str, dict[str, Any]]:
    """A loop's results with each model's changes (None: the uncompressed control) and gap, printed as they come."""
    for name, change in changes.items():
        measured[name]["changes"] = change
    gaps(measured, CONTROL)
    print(json.dumps(measured, indent=1), flush=True)
    return measured


def described(change: dict[str, Any] | None) -> str:
    """A candidate's changes to the compress params, in words."""
    if change is None:
        return "none: uncompressed"
    if not change:
        return "none: the stage's params"
    return ", ".join(f"{key} {json.dumps(value)}".replace('"', "") for key, value in change.items())


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """One row per model: its changes, size and dev scores before and after fine-tuning."""
    lines = [
        "| model | changes to `compress` | parameters | dev CER before | after | gap to control | dev CTC loss after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        gap = row.get("dev_cer_gap_to_control")
        cells = [
            name,
            described(row.get("changes")),
            f"{row['parameters'] / 1e6:.2f} M",
            f"{row['dev_cer_before']:.4f}",
            f"{row['dev_cer_after']:.4f}",
            "-" if gap is None else f"{gap * 100:+.2f} %",
            f"{row['dev_loss_after']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def sweep_block(report: dict[str, Any]) -> str:
    """The README's table of a sweep, markers included."""
    machine, options = report["machine"], report["options"]
    lines = [
        SWEEP_BEGIN,
        "",
        f"{options['steps']} fine-tuning steps each, all in one loop; dev greedy CER, one run each; "
        f"{machine_words(machine)}, {report['seconds'] / 60:.0f} min in all:",
        "",
        *table(report["candidates"]),
    ]
    if second := report.get("fine_tuned_teacher"):
        lines += [
            "",
            f"Then {options['steps']} steps with the fine-tuned control as the teacher, on new batches: "
            "the stage's candidate made afresh from the trained model, beside the control trained on alike:",
            "",
            *table(second),
        ]
    return "\n".join([*lines, "", SWEEP_END])


def readme_with(readme: str, block: str, begin: str = SWEEP_BEGIN, end: str = SWEEP_END) -> str:
    """``readme`` with the text between the markers ``begin`` and ``end`` replaced by ``block``
    (shared with ``compress_seeds.py``)."""
    start, stop = readme.find(begin), readme.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"error: README.md has no markers {begin!r} ... {end!r}")
    return readme[:start] + block + readme[stop + len(end) :]


def compress_options(
    params: dict[str, Any], steps: int | None, changes: dict[str, Any] | None = None
) -> CompressOptions:
    """The stage's ``compress`` params, ``steps`` and ``changes`` replaced where given (shared with
    ``compress_seeds.py``); a change is checked like the param it replaces."""
    settings = {**section(params, "compress"), **(changes or {})}
    if steps:
        settings["steps"] = steps
    return build(CompressOptions, settings, "compress")


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Both loops' results, with what they were measured on."""
    options = compress_options(load_params(), args.steps)
    train = UtteranceSet(Store(args.features / "train"))
    dev = UtteranceSet(Store(args.features / "dev"))
    teacher = fold_batch_norm(load_model(args.model)).eval()
    candidates = {STAGE: {}, **CANDIDATES}
    students = {
        name: compressed_model(teacher, train, dataclasses.replace(options, **change))
        for name, change in candidates.items()
    }
    students[CONTROL] = copy.deepcopy(teacher)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": hardware_stamp(),
        "model_md5": file_md5(args.model),
        "options": dataclasses.asdict(options),
        "candidates": labelled(fine_tune(students, teacher, train, dev, options), {**candidates, CONTROL: None}),
    }
    if not args.no_teacher_loop:
        fine_tuned_control = copy.deepcopy(students[CONTROL]).eval()
        second = {STAGE: compressed_model(teacher, train, options), CONTROL: students[CONTROL]}
        later = dataclasses.replace(options, seed=options.seed + 1)  # new batches for the control's further steps
        tuned = fine_tune(second, fine_tuned_control, train, dev, later)
        report["fine_tuned_teacher"] = labelled(tuned, {STAGE: {}, CONTROL: None})
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="fine-tuning steps (default: compress.steps)")
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, default=Path("reports/compress_sweep.json"))
    parser.add_argument("--no-teacher-loop", action="store_true", help="skip the second loop (better teacher)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--readme-only", action="store_true", help="write the README table from --output only")
    args = parser.parse_args()
    if args.readme_only:
        report = json.loads(args.output.read_text())
    else:
        report = sweep(args)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    args.readme.write_text(readme_with(args.readme.read_text(encoding="utf-8"), sweep_block(report)))


if __name__ == "__main__":
    main()
