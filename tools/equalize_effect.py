"""What balancing the low-rank layers before int8 does (``equalize.py``): ``pruned_int8`` made with and without it.

    python tools/equalize_effect.py [--utterances 150] [--output reports/equalize_effect.json]
    python tools/equalize_effect.py --readme-only   # the README's table again, from the report

From the pipeline's ``pruned_fp32`` this makes ``pruned_int8`` twice by the quantize stage's
recipe and params, once as the stage does (balanced; its md5 must be the stage's own file's,
else the report would describe another model) and once with the balancing skipped. Each int8
model is compared with the float one on a seeded subset of dev: the mean per-frame
KL(float || int8) of the output distributions and the share of frames whose greedy choice
agrees; ``static_int8`` against the exported fp32 model gives the scale of int8's error
without low-rank layers. Both int8 models are then scored on every split in ``eval.splits``
with the evaluate stage's decoder, the balanced one against the unbalanced one with the
compare stage's paired bootstrap. It writes its table into README.md between its markers; its
time is in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from compress_seeds import scored
from compress_sweep import readme_with

from speechquant.calibration import seeded_subset
from speechquant.compare import CompareOptions, paired_bootstrap
from speechquant.decode import Decoder, DecoderOptions
from speechquant.evaluate import EvalOptions, model_outputs
from speechquant.hardware import hardware_stamp, machine_words
from speechquant.lock import file_md5
from speechquant.params import build, load_params, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import open_model
from speechquant.sensitivity import mean_kl
from speechquant.store import Store

EFFECT_BEGIN = "<!-- equalize effect: written by tools/equalize_effect.py from reports/equalize_effect.json -->"
EFFECT_END = "<!-- end of equalize effect -->"
WAYS = ("unbalanced", "balanced")


def log_probs(model: Path, store: Store, indices: list[int]) -> list[np.ndarray]:
    """The model's log-probs of the utterances at ``indices``, in that order."""
    session = open_model(model, threads=1).session
    return model_outputs(session, store, batch_size=32, workers=os.cpu_count() or 1, only=indices)[0]


def fidelity(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, float]:
    """How close ``candidate``'s outputs are to ``reference``'s: the mean per-frame KL(reference || candidate)
    and the share of frames whose most likely class is the same."""
    agreeing = sum(int((r.argmax(-1) == c.argmax(-1)).sum()) for r, c in zip(reference, candidate, strict=True))
    frames = sum(len(r) for r in reference)
    return {"mean_kl": round(mean_kl(reference, candidate), 6), "greedy_agreement": round(agreeing / max(frames, 1), 5)}


def effect_block(report: dict[str, Any]) -> str:
    """The README's table of the report, markers included."""
    machine, ways = report["machine"], report["fidelity"]
    spreads = report["equalized"]
    layers = " / ".join(spreads)

    def spread(key: str) -> str:
        return " / ".join(f"{entry[key]:.1f}x" for entry in spreads.values())

    kl = {way: ways[way]["mean_kl"] for way in WAYS}
    # A model whose int8 copy matches it to six decimals (a tiny one, on a CPU with exact enough int8)
    # has no relative change to show.
    change = f"{(kl['balanced'] / kl['unbalanced'] - 1) * 100:+.0f} %" if kl["unbalanced"] > 0 else "-"
    lines = [
        EFFECT_BEGIN,
        "",
        f"`pruned_int8` made from the pipeline's `pruned_fp32` without and with the balancing (the latter is the "
        f"stage's own file); fidelity to the float model on {report['utterances']} dev utterances, beam-20 CER "
        f"on every split, the balanced model's difference to the unbalanced one relative, with its 95 % "
        f"paired-bootstrap interval; {machine_words(machine)}, "
        f"{report['seconds'] / 60:.0f} min:",
        "",
        "| | without | with | difference |",
        "|---|---|---|---|",
        f"| middle channels' range spread, {layers} | {spread('middle_range_spread_before')} | "
        f"{spread('middle_range_spread_after')} | |",
        f"| mean per-frame KL(float ‖ int8) | {kl['unbalanced']:.5f} | {kl['balanced']:.5f} | {change} |",
        f"| greedy agreement with float | {ways['unbalanced']['greedy_agreement'] * 100:.2f} % | "
        f"{ways['balanced']['greedy_agreement'] * 100:.2f} % | |",
    ]
    for split, entry in report["cer"].items():
        versus = entry["balanced_vs_unbalanced"]
        lines.append(
            f"| CER {split} | {entry['unbalanced']:.4f} | {entry['balanced']:.4f} | "
            f"{versus['relative_difference'] * 100:+.2f} % [{versus['relative_ci95_low'] * 100:+.2f}, "
            f"{versus['relative_ci95_high'] * 100:+.2f}] |"
        )
    scale = ways["static_int8_vs_fp32"]
    lines += [
        "",
        f"For scale, `static_int8` against the exported fp32 model: KL {scale['mean_kl']:.5f}, greedy agreement "
        f"{scale['greedy_agreement'] * 100:.2f} %.",
        "",
        EFFECT_END,
    ]
    return "\n".join(lines)


def measure(models: Path, features: Path, export: Path, utterances: int) -> dict[str, Any]:
    """The report's measurements: both int8 models made, their fidelity and their scores."""
    params = load_params()
    options = build(QuantOptions, section(params, "quant"), "quant")
    source, stage_file = models / "pruned_fp32.onnx", models / "pruned_int8.onnx"
    train, dev = Store(features / "train"), Store(features / "dev")
    with tempfile.TemporaryDirectory() as scratch:
        made = {way: Path(scratch) / f"{way}.onnx" for way in WAYS}
        _, measured = quantize("pruned_int8", source, made["balanced"], options, train)
        quantize("pruned_int8", source, made["unbalanced"], options, train, balance=False)
        if file_md5(made["balanced"]) != file_md5(stage_file):
            raise SystemExit(
                f"error: pruned_int8 made here differs from {stage_file}: run `dvc repro quantize_pruned` first"
            )
        subset = seeded_subset(len(dev), min(utterances, len(dev)), seed=0)
        float_outputs = log_probs(source, dev, subset)
        report_fidelity = {way: fidelity(float_outputs, log_probs(made[way], dev, subset)) for way in WAYS}
        report_fidelity["static_int8_vs_fp32"] = fidelity(
            log_probs(export, dev, subset), log_probs(models / "static_int8.onnx", dev, subset)
        )
        decoding = build(DecoderOptions, section(params, "decode"), "decode")
        if decoding.lm != "none":
            raise SystemExit("error: decode.lm is set; this tool scores as the evaluate stage does without an LM")
        decoder = Decoder(decoding, None)
        evaluation = build(EvalOptions, section(params, "eval"), "eval")
        comparing = build(CompareOptions, section(params, "compare"), "compare")
        cer: dict[str, Any] = {}
        for split in evaluation.splits:
            store = Store(features / split)
            scores = {way: scored(store, made[way], decoder, evaluation) for way in WAYS}
            cer[split] = {
                **{way: round(scores[way].cer(), 6) for way in WAYS},
                "balanced_vs_unbalanced": paired_bootstrap(
                    scores["balanced"], scores["unbalanced"], comparing.bootstrap_samples, comparing.seed
                ),
            }
            print(f"{split}: CER {cer[split]['unbalanced']:.4f} without, {cer[split]['balanced']:.4f} with")
    return {
        "source": str(source),
        "source_md5": file_md5(source),
        "pruned_int8_md5": file_md5(stage_file),
        "utterances": len(subset),
        "equalized": measured["equalized"],
        "fidelity": report_fidelity,
        "cer": cer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=150, help="dev utterances for the fidelity (seeded subset)")
    parser.add_argument("--models", type=Path, default=Path("models/quantized"))
    parser.add_argument("--export", type=Path, default=Path("models/model.onnx"), help="fp32, static_int8's source")
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, default=Path("reports/equalize_effect.json"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--readme-only", action="store_true", help="rewrite the README's table from --output")
    args = parser.parse_args()
    if not args.readme_only:
        started = time.perf_counter()
        report = {
            "command": f"python tools/equalize_effect.py --utterances {args.utterances}",
            "machine": hardware_stamp(),
            **measure(args.models, args.features, args.export, args.utterances),
        }
        report["seconds"] = round(time.perf_counter() - started, 1)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output} in {report['seconds']:.0f} s")
    report = json.loads(args.output.read_text())
    args.readme.write_text(readme_with(args.readme.read_text(), effect_block(report), EFFECT_BEGIN, EFFECT_END))


if __name__ == "__main__":
    main()
