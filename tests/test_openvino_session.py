"""The second runtime: OpenVINO answers as ONNX Runtime does, and the bf16 variant runs only where it can."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import soundfile

import speechquant.openvino_session as openvino_session
from helpers import REPO
from speechquant.audio import SAMPLE_RATE
from speechquant.calibration import utterance_inputs
from speechquant.errors import UserError
from speechquant.openvino_session import NotRunnableHere, bf16_missing_reason
from speechquant.quantize import QuantOptions, quantize
from speechquant.report.markdown import Results, readme_block
from speechquant.report.summary import summary_metrics
from speechquant.runtime import RunsIn, open_model
from speechquant.store import Store

NATIVE_BF16 = bf16_missing_reason() is None
CLI = "from speechquant.cli import main; main()"


@pytest.fixture(scope="module")
def bf16_file(exported, features, tmp_path_factory):
    path = tmp_path_factory.mktemp("bf16") / "bf16.onnx"
    quantize("bf16", exported, path, QuantOptions(), features)
    return path


def test_openvino_gives_onnx_runtimes_outputs_for_the_same_file(exported, features):
    onnxruntime, openvino = open_model(exported), open_model(exported, runtime="openvino", concurrent=2)
    assert openvino.runs_in == RunsIn("openvino", "f32") and openvino.card == onnxruntime.card
    for feed in utterance_inputs(features, 3, seed=0):
        expected, got = onnxruntime.session.run(None, feed), openvino.session.run(None, feed)
        assert np.abs(expected[0] - got[0]).max() < 1e-3 and np.array_equal(expected[1], got[1])


def test_the_bf16_variant_is_the_fp32_graph_marked_for_openvino(exported, bf16_file):
    exported_graph, bf16_graph = onnx.load(str(exported)).graph, onnx.load(str(bf16_file)).graph
    assert bf16_graph == exported_graph
    props = {p.key: p.value for p in onnx.load(str(bf16_file)).metadata_props}
    assert props["runtime"] == "openvino" and props["inference_precision"] == "bf16"
    forced = open_model(bf16_file, runtime="onnxruntime")  # a user may still run it in fp32
    assert forced.runs_in == RunsIn() and forced.card == open_model(exported).card


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16")
def test_bf16_runs_its_convolutions_in_bf16_and_its_normalization_in_f32(exported, bf16_file, features):
    """In bf16 the normalization's running sums over hundreds of frames moved 20% of the trained
    model's dev frames to another best class; the untrained test model is too flat to show it,
    so the precision each op ran in is checked, from OpenVINO's compiled models."""
    model = open_model(bf16_file)
    assert model.session.kernels["precisions"] == {"Convolution:bf16": 11}
    front_ops = [op.get_rt_info() for op in model.session.front.get_runtime_model().get_ordered_ops()]
    sums = [info["runtimePrecision"].astype(str) for info in front_ops if info["layerType"].astype(str) == "CumSum"]
    assert sums == ["f32", "f32"]  # the mean and the variance
    reference = open_model(exported).session
    for feed in utterance_inputs(features, 3, seed=0):
        assert np.abs(reference.run(None, feed)[0] - model.session.run(None, feed)[0]).max() < 0.05


def test_bf16_on_a_cpu_without_it_is_refused_with_the_reason(bf16_file, monkeypatch):
    monkeypatch.setattr(openvino_session, "bf16_missing_reason", lambda: "this CPU has no native bf16 (test)")
    with pytest.raises(NotRunnableHere, match="no native bf16"):
        open_model(bf16_file)


def test_a_file_openvino_cannot_read_is_refused_in_one_line(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(UserError, match=r"broken\.onnx") as raised:
        open_model(broken, runtime="openvino")
    assert "\n" not in str(raised.value)


def test_transcribe_runs_either_runtime_to_the_same_words(exported, features, tmp_path):
    audio = Store(features.path.parent / "audio")
    path = tmp_path / "a.wav"
    soundfile.write(path, np.asarray(audio[0], dtype=np.int16), SAMPLE_RATE, subtype="PCM_16")
    texts = {}
    for runtime in ("onnxruntime", "openvino"):
        command = [sys.executable, "-c", CLI, "transcribe", str(exported), str(path), "--json"]
        result = subprocess.run([*command, "--method", "greedy", "--runtime", runtime], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        texts[runtime] = json.loads(result.stdout)["text"]
    assert texts["onnxruntime"] == texts["openvino"] and texts["onnxruntime"]


def test_a_variant_this_machine_could_not_run_is_named_with_its_reason_not_dropped(tmp_path):
    """What compare, REPORT.md, the README block and metrics/summary.json show for a skipped bf16."""
    import shutil

    import yaml

    for folder in ("metrics", "plots"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    reason = "bf16.onnx runs in bf16, but this CPU has no native bf16 (test)"
    (tmp_path / "metrics" / "eval" / "bf16.json").write_text(json.dumps({"decoder": {}, "skipped": reason}))
    results = Results.load(tmp_path, params)
    assert "bf16" not in results.variants and results.skipped == {"bf16": reason}
    assert f"- **bf16** not evaluated here: {reason}." in readme_block(results)
    assert summary_metrics(results)["bf16"] == {"skipped": reason}


def test_the_runtime_check_tool_times_both_runtimes_and_names_openvinos_kernels(exported, tmp_path):
    output = tmp_path / "check.json"
    command = [sys.executable, str(REPO / "tools" / "runtime_check.py"), "--fp32", str(exported)]
    result = subprocess.run(
        [*command, "--int8", str(exported), "--output", str(output)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    check = json.loads(output.read_text())
    rows = check["latency_batch1_10s_1thread"]
    assert {"onnxruntime:fp32", "openvino:fp32"} <= set(rows) and rows["onnxruntime:fp32"]["x_onnxruntime_fp32"] == 1
    assert rows["openvino:fp32"]["precisions"] == {"Convolution:f32": 11}
    assert "openvino:bf16" in rows or "no native bf16" in check["skipped"]["openvino:bf16"]
    assert check["hardware"]["isa"] and check["one_core_gemm"]["int8_gmacs"] > 0
