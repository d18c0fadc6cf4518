"""tools/op_profile.py: where an ONNX model's time goes, and the README's table of it."""

import json

from helpers import REPO, load_tool, zen5_run_outputs
from speechquant.benchmark import benchmark_inputs


def test_the_profile_accounts_for_the_convolutions_and_the_rest(exported, features):
    tool = load_tool("op_profile")
    times = tool.profile({"model": exported}, *benchmark_inputs(features, 1, 2.0), runs=2)["model"]
    result = tool.summary(exported, times)
    # the float export: ORT fuses each conv with its ReLU; the padding masks are Muls
    assert times.get("FusedConv", 0) + times.get("Conv", 0) > 0 and times["Mul"] > 0
    assert 0 < result["convolution_share"] < 1
    assert abs(result["total_ms"] - sum(times.values())) < 1e-2


def test_a_label_names_a_file_of_an_earlier_run():
    tool = load_tool("op_profile")
    assert tool.labelled("before=/cache/ab/cd") == ("before", tool.Path("/cache/ab/cd"))
    assert tool.labelled("models/quantized/fp32.onnx") == (
        "models/quantized/fp32.onnx",
        tool.Path("models/quantized/fp32.onnx"),
    )


def test_the_readme_table_is_the_committed_report_of_the_zen5_runs_files():
    report = json.loads((REPO / "reports" / "op_profile.json").read_text())
    locked = zen5_run_outputs()
    pipeline_files = [label for label in report["models"] if label in locked]
    assert pipeline_files, "the report profiles none of the pipeline's own files"
    for label in pipeline_files:
        assert report["models"][label]["md5"] == locked[label]
    assert load_tool("op_profile").profile_block(report) in (REPO / "README.md").read_text(encoding="utf-8")
