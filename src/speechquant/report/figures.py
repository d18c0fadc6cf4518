"""The report's figures, drawn from the pipeline's metrics and plot data only.

Nothing here measures anything: every number comes from a file written by an earlier
stage (the text beside the figures is ``markdown.py``'s).
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from speechquant.benchmark import PYTORCH
from speechquant.report.markdown import Results, figure_captions
from speechquant.report.summary import cer_by_length_rows, pareto_flags, tradeoff_rows

DPI = 110
CAPTION_WIDTH = 80  # characters of a title line in a single-panel figure


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV or (by extension) TSV file."""
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file, delimiter="\t" if path.suffix == ".tsv" else ","))


MARKERS = "osD^v<>pP*Xh"


def plot_figures(results: Results, folder: Path) -> None:
    """Every figure REPORT.md shows, each titled with its caption (split, decoder, CPU)."""
    captions = figure_captions(results)
    plot_tradeoff(tradeoff_rows(results), folder / "size_latency_cer.png", captions["size_latency_cer"])
    drawn = {"batch", *results.variants, PYTORCH}  # ONNX Runtime's rows; OpenVINO's are in the tables
    latency_rows = read_table(results.root / "plots" / "benchmark" / "latency_vs_batch.csv")
    latency_rows = [{key: value for key, value in row.items() if key in drawn} for row in latency_rows]
    plot_latency_vs_batch(latency_rows, folder / "latency_vs_batch.png", captions["latency_vs_batch"])
    plot_training(results.root / "dvclive" / "plots" / "metrics", folder / "training.png")
    plot_cer_by_length(cer_by_length_rows(results, "dev"), folder / "cer_by_length.png", captions["cer_by_length"])
    layers = results.root / "plots" / "sensitivity" / "layers.csv"
    if results.sensitivity is not None and layers.exists():
        plot_sensitivity(read_table(layers), folder / "sensitivity.png", captions["sensitivity"])


def plot_tradeoff(rows: list[dict[str, Any]], path: Path, caption: str) -> None:
    """Dev CER against size (left) and against latency (right), one colour and marker per variant
    in a shared legend (labels beside points overlapped where variants coincide), and the Pareto
    front of each panel's two coordinates dashed."""
    figure, panels = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    axes_keys = [("size_mb", "model size (MB)"), ("latency_ms", "p50 latency (ms, batch 1, 10 s, 1 thread)")]
    for panel, (key, label) in zip(panels, axes_keys, strict=True):
        for index, row in enumerate(rows):
            panel.scatter(
                row[key], row["dev_cer"], s=60, marker=MARKERS[index % len(MARKERS)], label=row["variant"], alpha=0.85
            )
        on_front = pareto_flags({row["variant"]: (row[key], row["dev_cer"]) for row in rows})
        front = sorted((row[key], row["dev_cer"]) for row in rows if on_front[row["variant"]])
        panel.plot([p[0] for p in front], [p[1] for p in front], color="grey", linestyle="--", linewidth=1)
        panel.set_xscale("log")  # sizes and latencies span 4-30x; a linear axis crowds the int8 variants
        panel.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        panel.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        panel.xaxis.set_minor_formatter(NullFormatter())
        panel.set_xlabel(label)
    panels[0].set_ylabel("dev CER")
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center right", fontsize=8, title="variant")
    figure.suptitle(textwrap.fill(caption, 2 * CAPTION_WIDTH), fontsize=9)
    figure.tight_layout(rect=(0, 0, 0.82, 1))
    _save(figure, path, layout=False)


def plot_cer_by_length(rows: list[dict[str, Any]], path: Path, caption: str) -> None:
    """``rows``: one per length bin (``frames``, its median length), a CER column per variant."""
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    drawn = [column for column in rows[0] if column != "frames" and rows[0][column] != ""]  # "": not run here
    for index, variant in enumerate(drawn):
        axes.plot(
            [row["frames"] for row in rows],
            [row[variant] for row in rows],
            marker=MARKERS[index % len(MARKERS)],
            label=variant,
        )
    axes.set(xlabel="utterance length (feature frames, median of the bin)", ylabel="CER in the bin")
    axes.set_title(textwrap.fill(caption, CAPTION_WIDTH), fontsize=9)
    axes.legend(fontsize=7, ncol=2)
    _save(figure, path)


def plot_latency_vs_batch(rows: list[dict[str, str]], path: Path, caption: str) -> None:
    """``rows``: one per batch size, a p50 latency column per variant (the benchmark's plot data)."""
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    batches = [int(r["batch"]) for r in rows]
    for variant in [column for column in rows[0] if column != "batch" and rows[0][column] != ""]:  # "": not run
        axes.plot(batches, [float(r[variant]) for r in rows], marker="o", label=variant)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set(xlabel="batch size (utterances)", ylabel="p50 latency (ms)")
    axes.set_title(textwrap.fill(caption, CAPTION_WIDTH), fontsize=9)
    axes.legend(fontsize=7)
    _save(figure, path)


def plot_training(dvclive_plots: Path, path: Path) -> None:
    figure, (loss_axes, cer_axes) = plt.subplots(1, 2, figsize=(9, 3.6))
    for split in ("train", "dev"):
        rows = read_table(dvclive_plots / split / "loss.tsv")
        loss_axes.plot([int(r["step"]) + 1 for r in rows], [float(r["loss"]) for r in rows], marker="o", label=split)
    rows = read_table(dvclive_plots / "dev" / "cer.tsv")
    cer_axes.plot([int(r["step"]) + 1 for r in rows], [float(r["cer"]) for r in rows], marker="o", color="tab:green")
    loss_axes.set(xlabel="epoch", ylabel="CTC loss per utterance", title="Training curves")
    cer_axes.set(xlabel="epoch", ylabel="dev CER (greedy)", title="Dev CER")
    loss_axes.legend()
    _save(figure, path)


def _save(figure: Any, path: Path, layout: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout:
        figure.tight_layout()
    # No timestamps in the PNG, so the same data gives the same bytes.
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(figure)


def plot_sensitivity(rows: list[dict[str, str]], path: Path, caption: str) -> None:
    """Per layer: relative CER change when only it is int8, and when every layer but it is
    (``rows``: the sensitivity stage's plot table)."""
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    layers = [row["layer"] for row in rows]
    positions = range(len(layers))
    only = [100 * float(row["only_this_layer_cer_change"]) for row in rows]
    all_but = [100 * float(row["all_but_this_layer_cer_change"]) for row in rows]
    axes.bar([p - 0.2 for p in positions], only, width=0.4, label="only this layer int8")
    axes.bar([p + 0.2 for p in positions], all_but, width=0.4, label="all layers but this one int8")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(list(positions), layers, rotation=45)
    axes.set(ylabel="relative CER change vs fp32 (%)")
    axes.set_title(textwrap.fill(caption, CAPTION_WIDTH), fontsize=9)
    axes.legend(fontsize=8)
    _save(figure, path)
