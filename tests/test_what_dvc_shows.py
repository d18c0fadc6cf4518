"""What `dvc exp show`, `dvc metrics diff` and `dvc plots` put in front of a person."""

import json

import numpy as np
import pytest
import yaml

from helpers import REPO
from speechquant.compare import Scored
from speechquant.report.markdown import Results
from speechquant.report.summary import LENGTH_BINS, cer_by_length, pareto_flags, summary_metrics

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SUMMARY_KEYS = {
    "mb",
    "x_smaller",
    "cer_dev",
    "cer_test",
    "wer_test",
    "cer_change",
    "p50_ms",
    "x_faster",
    "skipped",
    "vs_ft",
}
EXP_SHOW_GAP = 3  # characters between two columns of `dvc exp show`


def test_dvc_shows_only_the_summary_as_metrics_and_draws_only_titled_plots():
    declared_metrics = [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in DVC_YAML["stages"].values()
        for entry in stage.get("metrics", [])
    ]
    assert declared_metrics == ["metrics/summary.json"]
    assert not [name for name, stage in DVC_YAML["stages"].items() if "plots" in stage]  # untitled when drawn
    titles = [next(iter(plot.values()))["title"] for plot in DVC_YAML["plots"]]
    assert len(set(titles)) == len(titles) == len(DVC_YAML["plots"])
    for plot in DVC_YAML["plots"]:
        props = next(iter(plot.values()))
        assert props.get("x_label") and props.get("y_label"), plot
        template = props["template"]
        builtin = {"linear", "simple", "scatter", "smooth", "bar_horizontal", "bar_horizontal_sorted", "confusion"}
        assert template in builtin or (REPO / ".dvc" / "plots" / f"{template}.json").exists(), template


def test_the_committed_summary_is_what_the_report_stage_writes_and_stays_a_screen_wide():
    summary = summary_metrics(Results.load(REPO, PARAMS))
    assert json.loads((REPO / "metrics" / "summary.json").read_text()) == summary
    variants = PARAMS["quant"]["variants"]
    assert set(summary) == {"machine", "decoder", *variants}
    for variant in variants:
        assert set(summary[variant]) <= SUMMARY_KEYS
        # `dvc exp show` heads each column with "<variant>.<key>" and sizes it to the wider of
        # head and value; the group of a variant fits a 200-character line but for the
        # longest names, which stay within 240.
        width = sum(
            max(len(f"{variant}.{key}"), len(str(value))) + EXP_SHOW_GAP for key, value in summary[variant].items()
        )
        assert width <= (200 if len(variant) <= 12 else 240), (variant, width)


def test_the_summary_quotes_the_detailed_files():
    results = Results.load(REPO, PARAMS)
    summary = summary_metrics(results)
    int8 = summary["static_int8"]
    assert int8["cer_dev"] == round(results.evaluation["static_int8"]["dev"]["cer"], 4)
    assert int8["x_faster"] == round(results.timing("static_int8")["speedup_vs_fp32"], 2)
    assert int8["mb"] == round(results.benchmark["variants"]["static_int8"]["size_mb"], 2)
    versus = results.compare["static_int8"]["dev"]["vs_fp32"]
    assert int8["cer_change"].startswith(f"{100 * versus['relative_difference']:+.2f}% [")
    assert "cer_change" not in summary["fp32"] and summary["fp32"]["x_faster"] == 1.0


def test_the_pareto_front_keeps_only_points_nothing_beats_on_every_axis():
    points = {"fp32": (21.0, 58.0, 0.13), "fp16": (10.5, 58.0, 0.13), "int8": (5.3, 14.0, 0.135), "x": (5.4, 15.0, 0.2)}
    assert pareto_flags(points) == {"fp32": False, "fp16": True, "int8": True, "x": False}
    assert pareto_flags({"a": (1.0, 1.0), "b": (1.0, 1.0)}) == {"a": True, "b": True}  # ties beat nobody


def scored(edits: list[int], lengths: list[int], frames: list[int]) -> Scored:
    ids = [str(i) for i in range(len(edits))]
    return Scored(ids, ids, ids, np.array(edits), np.array(lengths), np.array(frames))


def test_cer_by_length_puts_as_many_utterances_in_each_bin_and_pools_their_edits():
    count = 4 * LENGTH_BINS
    frames = list(range(100, 100 + 10 * count, 10))
    reference = scored([1] * count, [10] * count, frames)
    worse_on_long = scored([1] * (count - 4) + [5] * 4, [10] * count, frames)
    rows = cer_by_length({"fp32": reference, "int8": worse_on_long}, "fp32")
    assert len(rows) == LENGTH_BINS
    assert [row["fp32"] for row in rows] == [0.1] * LENGTH_BINS
    assert [row["int8"] for row in rows] == [0.1] * (LENGTH_BINS - 1) + [0.5]
    assert rows[0]["frames"] == pytest.approx(np.median(frames[:4]))
    assert [row["frames"] for row in rows] == sorted(row["frames"] for row in rows)
