"""Render what `dvc plots show` (or `dvc plots diff REV...`) draws to PNG files, offline.

The plots page is HTML that a browser draws with Vega; on a server with no browser and no
network this gives the same charts as images to read or attach to a review:
``python tools/render_plots.py [--diff HEAD~1] --output reports/plots``. vl-convert-python
bundles Vega and Vega-Lite, so nothing is fetched.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import vl_convert


def plot_specs(revisions: list[str]) -> dict[str, dict]:
    """The Vega-Lite spec of every plot DVC draws, filled with data, by plot id."""
    command = [sys.executable, "-m", "dvc", "plots", *(["diff", *revisions] if revisions else ["show"]), "--json"]
    shown = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return {name: renders[0]["content"] for name, renders in shown["data"].items() if renders[0]["type"] == "vega"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--diff", nargs="*", default=None, help="revisions to compare, as `dvc plots diff` takes")
    parser.add_argument("--output", type=Path, default=Path("reports/plots"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for name, spec in plot_specs(args.diff or []).items():
        path = args.output / f"{re.sub(r'[^A-Za-z0-9_-]+', '_', name)}.png"
        path.write_bytes(vl_convert.vegalite_to_png(spec, scale=1.5))
        print(f"{path}: {spec.get('title', {}).get('text', '')}")


if __name__ == "__main__":
    main()
