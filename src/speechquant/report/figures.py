"""The report's figures, drawn from the pipeline's metrics and plot data only.

Nothing here measures anything: every number comes from a file written by an earlier
stage (the text beside the figures is ``summary.py``'s).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt

DPI = 110


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The (size, cer, name) points no other point beats on both size and CER, by size."""
    front, best = [], float("inf")
    for point in sorted(points, key=lambda p: (p[0], p[1])):
        if point[1] < best:
            front.append(point)
            best = point[1]
    return front


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV or (by extension) TSV file."""
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file, delimiter="\t" if path.suffix == ".tsv" else ","))


def plot_size_vs_cer(sizes: dict[str, float], cers: dict[str, float], path: Path) -> None:
    points = [(sizes[v], cers[v], v) for v in sizes if cers.get(v) is not None]
    front = pareto_front(points)
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    axes.scatter([p[0] for p in points], [p[1] for p in points], color="tab:blue")
    for size, cer, name in points:
        axes.annotate(name, (size, cer), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.plot([p[0] for p in front], [p[1] for p in front], color="tab:red", linestyle="--", label="Pareto front")
    axes.set_xlabel("model size (MB)")
    axes.set_ylabel("dev CER")
    axes.set_title("Size vs accuracy")
    axes.legend()
    _save(figure, path)


def plot_latency_vs_batch(rows: list[dict[str, str]], path: Path) -> None:
    """``rows``: one per batch size, a p50 latency column per variant (the benchmark's plot data)."""
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    batches = [int(r["batch"]) for r in rows]
    for variant in [column for column in rows[0] if column != "batch"]:
        axes.plot(batches, [float(r[variant]) for r in rows], marker="o", label=variant)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set(xlabel="batch size (utterances)", ylabel="p50 latency (ms)", title="Latency vs batch (1 thread)")
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


def plot_edits_vs_length(scored_csvs: dict[str, Path], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    for variant, csv_path in scored_csvs.items():
        with open(csv_path, encoding="utf-8", newline="") as file:
            rows = [r for r in csv.DictReader(file) if r["edits"] != ""]
        axes.scatter([int(r["frames"]) for r in rows], [int(r["edits"]) for r in rows], s=6, alpha=0.5, label=variant)
    axes.set(xlabel="utterance length (frames of 10 ms)", ylabel="character edits", title="Edit distance vs length")
    axes.legend(fontsize=7, markerscale=2)
    _save(figure, path)


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    # No timestamps in the PNG, so the same data gives the same bytes.
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(figure)


def plot_sensitivity(rows: list[dict[str, Any]], path: Path) -> None:
    """Per layer: relative CER change when only it is int8, and when every layer but it is."""
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    layers = [row["layer"] for row in rows]
    positions = range(len(layers))
    only = [100 * row["only_this_layer_cer_change"] for row in rows]
    all_but = [100 * row["all_but_this_layer_cer_change"] for row in rows]
    axes.bar([p - 0.2 for p in positions], only, width=0.4, label="only this layer int8")
    axes.bar([p + 0.2 for p in positions], all_but, width=0.4, label="all layers but this one int8")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(list(positions), layers, rotation=45)
    axes.set(ylabel="CER change vs fp32 (%)", title="Layer sensitivity (dev subset)")
    axes.legend(fontsize=8)
    _save(figure, path)
