"""DVC stage `report`: REPORT.md and its figures, and the results block of README.md.

The README's block (between its results markers) is rewritten in place when the README
has one, so the numbers a reader sees first are the ones this run measured.
"""

import argparse
from pathlib import Path

from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_text
from speechquant.params import load_params
from speechquant.report.figures import (
    plot_edits_vs_length,
    plot_latency_vs_batch,
    plot_size_vs_cer,
    plot_training,
    read_table,
)
from speechquant.report.markdown import README_BEGIN, Results, readme_block, replace_readme_block, report_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("REPORT.md"))
    parser.add_argument("--figures", type=Path, default=Path("reports/figures"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args()
    results = Results.load(Path("."), load_params())
    variants, figures = results.variants, args.figures
    sizes = {v: results.benchmark["variants"][v]["size_mb"] for v in variants}
    plot_size_vs_cer(sizes, {v: results.evaluation[v]["dev"]["cer"] for v in variants}, figures / "size_vs_cer.png")
    plot_latency_vs_batch(read_table(Path("plots/benchmark/latency_vs_batch.csv")), figures / "latency_vs_batch.png")
    plot_training(Path("dvclive/plots/metrics"), figures / "training.png")
    plot_edits_vs_length(
        {v: Path("plots/eval") / v / "dev.csv" for v in (results.reference, "static_int8") if v in variants},
        figures / "edits_vs_length.png",
    )
    write_text(args.output, report_markdown(results, figures))
    block = readme_block(results)
    if args.readme.exists() and README_BEGIN in (readme := args.readme.read_text(encoding="utf-8")):
        write_text(args.readme, replace_readme_block(readme, block))
    print(block)


if __name__ == "__main__":
    exit_on_user_error(main)
