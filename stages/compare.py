"""DVC stage `compare`: every variant's scores side by side, CER differences against the
reference variant with paired bootstrap 95% intervals, and example transcripts."""

import argparse
import json
from pathlib import Path

from speechquant.compare import (
    CompareOptions,
    Scored,
    describe_difference,
    example_lines,
    optional_number,
    paired_bootstrap,
)
from speechquant.errors import UserError, exit_on_user_error
from speechquant.fileio import write_csv, write_json, write_text
from speechquant.params import build, load_params, section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics/eval"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots/eval"))
    parser.add_argument("--output", type=Path, default=Path("metrics/compare.json"))
    parser.add_argument("--cer-plot", type=Path, default=Path("plots/compare/cer.csv"))
    parser.add_argument("--report", type=Path, default=Path("reports/evaluation.md"))
    args = parser.parse_args()
    params = load_params()
    options = build(CompareOptions, section(params, "compare"), "compare")
    variants = list(section(params, "quant")["variants"])
    splits = list(section(params, "eval")["splits"])
    metrics = {v: json.loads((args.metrics_dir / f"{v}.json").read_text(encoding="utf-8")) for v in variants}
    scored = {(v, s): Scored.read(args.plots_dir / v / f"{s}.csv") for v in variants for s in splits}
    if options.reference not in variants:
        raise UserError(f"compare.reference {options.reference!r} is not one of quant.variants {variants}")

    summary, bars = {}, []
    for variant in variants:
        summary[variant] = {}
        for split in splits:
            split_metrics = metrics[variant][split]
            entry = {key: split_metrics[key] for key in ("cer", "wer", "levenshtein_mean", "ctc_loss", "scored")}
            if variant != options.reference and split_metrics["scored"]:
                entry["vs_" + options.reference] = paired_bootstrap(
                    scored[variant, split], scored[options.reference, split], options.bootstrap_samples, options.seed
                )
            summary[variant][split] = entry
            bars.append({"model": f"{variant} ({split})", "variant": variant, "split": split, "cer": entry["cer"]})
    write_json(args.output, summary)
    write_csv(args.cer_plot, bars)
    write_text(args.report, report(summary, scored, variants, splits, options))
    print(report(summary, scored, variants, splits, options).split("\n## Examples")[0])


def report(summary: dict, scored: dict, variants: list[str], splits: list[str], options: CompareOptions) -> str:
    reference = options.reference
    lines = ["# Evaluation", ""]
    for split in splits:
        lines += [
            f"## {split}",
            "",
            f"| variant | CER | WER | avg Levenshtein | CTC loss | CER vs {reference}, relative (95% CI) |",
            "|---|---|---|---|---|---|",
        ]
        for variant in variants:
            entry = summary[variant][split]
            versus = entry.get("vs_" + reference)
            difference = describe_difference(versus) if versus else "-"
            cells = [optional_number(entry[key]) for key in ("cer", "wer")]
            cells += [optional_number(entry[key], 2) for key in ("levenshtein_mean", "ctc_loss")]
            lines.append(f"| {variant} | {' | '.join(cells)} | {difference} |")
        lines.append("")
    lines += [f"## Examples ({splits[0]}, as the study's section 6.4)", ""]
    for variant in variants:
        if not scored[variant, splits[0]].ids:
            continue
        lines += [f"### {variant}", "", *example_lines(scored[variant, splits[0]]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    exit_on_user_error(main)
