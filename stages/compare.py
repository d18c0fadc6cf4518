"""DVC stage `compare`: every variant's scores side by side, CER differences against the
reference variant with paired bootstrap 95% intervals, and example transcripts."""

import argparse
import json
from pathlib import Path

from speechquant.compare import CompareOptions, Scored, compare_variants
from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_csv, write_json, write_text
from speechquant.params import build, load_params, section
from speechquant.report.markdown import evaluation_markdown
from speechquant.variants import CONTROL, recipe_for


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
    variants, splits = list(section(params, "quant")["variants"]), list(section(params, "eval")["splits"])
    metrics = {v: json.loads((args.metrics_dir / f"{v}.json").read_text(encoding="utf-8")) for v in variants}
    skipped = {v: m["skipped"] for v, m in metrics.items() if "skipped" in m}  # not runnable on this machine
    variants = [v for v in variants if v not in skipped]
    scored = {(v, s): Scored.read(args.plots_dir / v / f"{s}.csv") for v in variants for s in splits}
    controls = {v: CONTROL for v in variants if recipe_for(v).fine_tuned and CONTROL in variants}
    summary, bars = compare_variants(metrics, scored, variants, splits, options, controls)
    summary.update({v: {"skipped": reason} for v, reason in skipped.items()})
    markdown = evaluation_markdown(summary, scored, variants, splits, options.reference, skipped)
    write_json(args.output, summary)
    write_csv(args.cer_plot, bars)
    write_text(args.report, markdown)
    print(markdown.split("\n## Examples")[0])


if __name__ == "__main__":
    exit_on_user_error(main)
