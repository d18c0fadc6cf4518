"""The few numbers `dvc exp show` and `dvc metrics diff` show, and the tables `dvc plots` draws.

The stages' own metrics files hold hundreds of keys (kernel counts, every latency
configuration, hardware flags); declared as DVC metrics they flatten into a table nobody
can read. Only ``metrics/summary.json`` is declared: per variant the size, the scores, the
CER change against the reference with its interval, and the headline latency, under short
stable keys so each variant's columns fit on a screen. Everything here is read from the
files an earlier stage wrote; nothing is measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from speechquant.compare import Scored
from speechquant.report.markdown import Results, decoder_words
from speechquant.variants import CONTROL

# Length bins of the CER-by-length plot: quantiles of the reference variant's utterances.
LENGTH_BINS = 6


def cer_change_words(versus: dict[str, Any], digits: int = 2) -> str:
    """A relative CER change with its 95% interval, in percent: "+0.77% [-0.31, +1.90]"."""
    low, high = 100 * versus["relative_ci95_low"], 100 * versus["relative_ci95_high"]
    return f"{100 * versus['relative_difference']:+.{digits}f}% [{low:+.{digits}f}, {high:+.{digits}f}]"


def summary_metrics(results: Results) -> dict[str, Any]:
    """``metrics/summary.json``: the machine and decoder once, then one short group per variant.

    Keys: ``mb`` (file size), ``x_smaller`` (against the reference), ``cer_dev``, ``cer_test``,
    ``wer_test``, ``cer_change`` (relative dev CER change against the reference with its
    paired-bootstrap 95% interval), for fine-tuned variants ``vs_ft`` (the same against
    ``fp32_finetuned``, in whole percent so that the group still fits 200 characters),
    ``p50_ms`` (batch 1, 10 s of audio, 1 thread) and ``x_faster``. Eight columns a variant
    (nine when fine-tuned): with dev WER another, the study's variant names
    (``dynamic_int8``) no longer fit 200 characters of `dvc exp show`; REPORT.md has it.
    """
    hardware = results.benchmark["hardware"]
    summary: dict[str, Any] = {
        "machine": f"{hardware['cpu']}, {hardware['cores']} cores ({hardware.get('isa', '')})",
        "decoder": decoder_words(results.evaluation[results.reference].get("decoder")),
    }
    for variant in results.variants:
        size, timing = results.benchmark["variants"][variant], results.timing(variant)
        row: dict[str, Any] = {"mb": round(size["size_mb"], 2), "x_smaller": round(size["size_ratio_vs_fp32"], 2)}
        dev, test = (results.evaluation[variant].get(split, {}) for split in ("dev", "test"))
        row["cer_dev"], row["cer_test"] = _rounded(dev.get("cer"), 4), _rounded(test.get("cer"), 4)
        row["wer_test"] = _rounded(test.get("wer"), 4)
        versus = results.compare[variant].get("dev", {}).get(f"vs_{results.reference}")
        if versus:
            row["cer_change"] = cer_change_words(versus)
        control = results.compare[variant].get("dev", {}).get(f"vs_{CONTROL}")
        if control:  # a fine-tuned variant against the model fine-tuned as long, uncompressed
            row["vs_ft"] = cer_change_words(control, digits=0)
        row["p50_ms"] = _rounded(timing.get("latency_ms_p50"), 1)
        row["x_faster"] = _rounded(timing.get("speedup_vs_fp32"), 2)
        summary[variant] = {key: value for key, value in row.items() if value is not None}
    summary.update({variant: {"skipped": reason} for variant, reason in results.skipped.items()})
    return summary


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def pareto_flags(points: dict[str, tuple[float, ...]]) -> dict[str, bool]:
    """Whether each point is on the Pareto front: no other point is at least as good on every
    coordinate (lower is better) and better on one."""
    return {
        name: not any(
            all(o <= p for o, p in zip(other, point, strict=True)) and other != point for other in points.values()
        )
        for name, point in points.items()
    }


def tradeoff_rows(results: Results) -> list[dict[str, Any]]:
    """One row per variant with a headline latency and a dev CER: size, latency, dev CER, and
    whether no other variant is at least as small, fast and accurate and better in one."""
    points, rows = {}, []
    for variant in results.variants:
        latency = results.timing(variant).get("latency_ms_p50")
        cer = results.evaluation[variant].get("dev", {}).get("cer")
        if latency is None or cer is None:
            continue
        points[variant] = (results.benchmark["variants"][variant]["size_mb"], latency, cer)
    front = pareto_flags(points)
    for variant, (size, latency, cer) in points.items():
        rows.append(
            {"variant": variant, "size_mb": size, "latency_ms": latency, "dev_cer": cer, "pareto": front[variant]}
        )
    return rows


def cer_by_length_rows(results: Results, split: str) -> list[dict[str, Any]]:
    """The CER-by-length table of ``split`` for every variant (``cer_by_length``); a variant this CPU could
    not run gets an empty column, since DVC draws nothing of a plot that lacks a field it lists."""
    scored = {variant: results.scored("eval", variant, split) for variant in results.variants}
    return [{**row, **{variant: "" for variant in results.skipped}} for row in cer_by_length(scored, results.reference)]


def cer_by_length(scored: dict[str, Scored], reference: str) -> list[dict[str, Any]]:
    """CER per utterance-length bin, a column per variant: how errors grow with length.

    The bins are quantiles of the utterances' lengths, so each holds about as many;
    ``frames`` is the bin's median length in feature frames (the feature files, not the
    git-tracked metrics, know the hop). Every variant scores the same utterances, so a row
    compares like with like."""
    frames = scored[reference].frames
    if frames is None or not len(frames):
        return []
    edges = np.quantile(frames, np.linspace(0, 1, LENGTH_BINS + 1))
    bins = np.clip(np.searchsorted(edges, frames, side="right") - 1, 0, LENGTH_BINS - 1)
    rows = []
    for index in range(LENGTH_BINS):
        members = bins == index
        if not members.any():
            continue
        row: dict[str, Any] = {"frames": round(float(np.median(frames[members])), 1)}
        for variant, variant_scores in scored.items():
            edits = variant_scores.edits[members].sum()
            row[variant] = round(float(edits / max(variant_scores.lengths[members].sum(), 1)), 4)
        rows.append(row)
    return rows
