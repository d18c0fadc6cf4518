"""DVC stage `report`: the summary metrics DVC shows, the tables `dvc plots` draws, REPORT.md
with its figures, and the results block of README.md.

The README's block (between its results markers) is rewritten in place when the README
has one, so the numbers a reader sees first are the ones this run measured.
"""

import argparse
from pathlib import Path

from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_csv, write_json, write_text
from speechquant.params import load_params
from speechquant.report.figures import plot_figures
from speechquant.report.markdown import README_BEGIN, Results, readme_block, replace_readme_block, report_markdown
from speechquant.report.summary import cer_by_length_rows, summary_metrics, tradeoff_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("REPORT.md"))
    parser.add_argument("--figures", type=Path, default=Path("reports/figures"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--summary", type=Path, default=Path("metrics/summary.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots/report"))
    args = parser.parse_args()
    results = Results.load(Path("."), load_params())
    write_json(args.summary, summary_metrics(results))
    write_csv(args.plots / "tradeoff.csv", tradeoff_rows(results))
    for split in results.splits:
        write_csv(args.plots / f"cer_by_length_{split}.csv", cer_by_length_rows(results, split))
    plot_figures(results, args.figures)
    write_text(args.output, report_markdown(results, args.figures))
    block = readme_block(results)
    if args.readme.exists() and README_BEGIN in (readme := args.readme.read_text(encoding="utf-8")):
        write_text(args.readme, replace_readme_block(readme, block))
    print(block)


if __name__ == "__main__":
    exit_on_user_error(main)
