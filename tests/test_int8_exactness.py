"""tools/int8_exactness.py: its kernel check compares with exact integer products, its reference runs
the int8 model's own float arithmetic (never an int8 kernel), and the README shows its report."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import pytest
import soundfile
from onnx import numpy_helper
from test_transcribe import run_cli

from helpers import REPO, load_tool
from speechquant.params import build, load_params, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import session
from speechquant.saturation import has_vnni, saturation_warning
from speechquant.store import pad_rows


def test_uint8_by_uint8_is_exact_on_every_cpu_and_the_uint8_by_int8_share_is_a_share():
    measured = load_tool("int8_exactness").kernel_errors(rows=32, depth=64, columns=16)
    assert measured["uint8_x_uint8"] == {"wrong_share": 0.0, "max_abs_error": 0}
    assert 0.0 <= measured["uint8_x_int8"]["wrong_share"] <= 1.0


def openvino_kernels(isa_cap: str | None) -> dict:
    """The tool's OpenVINO kernel check in a fresh process (oneDNN reads its cap once, at start)."""
    env = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    if isa_cap:
        env["ONEDNN_MAX_CPU_ISA"] = isa_cap
    code = "import json, int8_exactness; print(json.dumps(int8_exactness.openvino_kernel_errors()))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO / "tools", env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_openvino_capped_at_avx2_saturates_8_bit_weights_and_computes_7_bit_ones_exactly():
    capped = openvino_kernels("AVX2")
    assert "avx2" in capped["primitive"]  # the cap held: oneDNN ran its AVX2 int8 kernel
    assert capped["uint8_x_int8"]["wrong_share"] > 0.5  # every CPU: VPMADDUBSW's 16-bit pairs
    assert capped["uint8_x_int7"] == {"wrong_share": 0.0, "max_abs_error": 0}
    native = openvino_kernels(None)
    assert native["uint8_x_int7"] == {"wrong_share": 0.0, "max_abs_error": 0}
    assert (native["uint8_x_int8"]["wrong_share"] == 0.0) is has_vnni()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("fpu sse2 avx2 fma", False), ("avx2 avx512f avx512_vnni", True), ("avx2 avx_vnni", True), ("", False)],
)
def test_vnni_is_read_from_either_dot_product_flag(flags, expected):
    assert has_vnni(cpuinfo(flags)) is expected


def cpuinfo(flags: str) -> str:
    return f"processor\t: 0\nflags\t\t: {flags}\n"


@pytest.fixture(scope="module")
def int8_models(exported, features, tmp_path_factory):
    root = tmp_path_factory.mktemp("int8_exactness")
    options = build(QuantOptions, section(load_params(), "quant"), "quant")
    for variant in ("static_int8", "dynamic_int8"):
        quantize(variant, exported, root / f"{variant}.onnx", options, features)
    quantize("static_int8", exported, root / "static_int8_8bit.onnx", replace(options, weight_bits=8), features)
    return root


def test_the_reference_runs_the_quantized_arithmetic_in_float_and_refuses_a_file_written_with_int8_kernels(
    int8_models, exported, features
):
    tool = load_tool("int8_exactness")
    inputs, lengths = pad_rows([np.asarray(features[i], dtype=np.float32) for i in range(4)])
    feed = {"features": inputs, "lengths": lengths}
    floating = session(exported).run(["log_probs"], feed)[0]
    reference = tool.reference_session(int8_models / "static_int8.onnx").run(["log_probs"], feed)[0]
    difference = np.abs(reference - floating).max()
    assert 0 < difference < 1.0  # quantized (not the float model), yet the same model
    with pytest.raises(SystemExit, match="ConvInteger"):
        tool.reference_session(int8_models / "dynamic_int8.onnx")


def int8_weights(path) -> list[np.ndarray]:
    graph = onnx.load(str(path)).graph
    """The conv weights of a QDQ file (its int8 zero points are vectors)."""
    return [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.dims[1:]]


def test_the_stage_makes_7_bit_weights_by_default_and_the_tool_makes_both_widths_by_its_recipe(
    int8_models, exported, features, tmp_path
):
    tool = load_tool("int8_exactness")
    tool.made_with_weight_bits("static_int8", exported, tmp_path / "eight.onnx", features, 8)
    tool.made_with_weight_bits("static_int8", exported, tmp_path / "seven.onnx", features, 7)
    default = int8_models / "static_int8.onnx"  # the params' quant.weight_bits: 7
    assert default.read_bytes() == (tmp_path / "seven.onnx").read_bytes()
    assert (int8_models / "static_int8_8bit.onnx").read_bytes() == (tmp_path / "eight.onnx").read_bytes()
    eight, seven = int8_weights(tmp_path / "eight.onnx"), int8_weights(default)
    assert len(seven) == len(eight) == 11  # one per conv, as the stage makes it
    assert max(int(np.abs(w).max()) for w in eight) > 64
    assert all(w.min() >= -64 and w.max() <= 64 for w in seven)
    assert all(int(np.abs(w).max()) >= 64 for w in seven)  # the 7-bit range is used, not squeezed further


def test_transcribe_warns_of_8_bit_weights_on_a_cpu_without_vnni_only(int8_models, exported):
    eight, seven = int8_models / "static_int8_8bit.onnx", int8_models / "static_int8.onnx"
    for runtime, words in (("onnxruntime", "ONNX Runtime saturates"), ("openvino", "OpenVINO saturates")):
        warning = saturation_warning(eight, runtime, cpuinfo("avx2 fma"))
        assert warning is not None and warning.startswith(f"warning: {eight} has int8 weights beyond 7 bits")
        assert words in warning and "quant.weight_bits: 7" in warning
        assert saturation_warning(eight, runtime, cpuinfo("avx2 avx512f avx512_vnni")) is None
        assert saturation_warning(seven, runtime, cpuinfo("avx2 fma")) is None
        assert saturation_warning(exported, runtime, cpuinfo("avx2 fma")) is None  # float: nothing to saturate


def test_the_transcribe_command_prints_the_warning_exactly_where_this_cpu_lacks_vnni(int8_models, tmp_path):
    audio = tmp_path / "noise.wav"
    soundfile.write(audio, np.random.default_rng(0).uniform(-0.1, 0.1, 32_000), 16_000)
    eight = run_cli("transcribe", str(int8_models / "static_int8_8bit.onnx"), str(audio), "--method", "greedy")
    assert eight.returncode == 0, eight.stderr
    assert ("has int8 weights beyond 7 bits" in eight.stderr) is not has_vnni()
    seven = run_cli("transcribe", str(int8_models / "static_int8.onnx"), str(audio), "--method", "greedy")
    assert seven.returncode == 0 and "beyond 7 bits" not in seven.stderr  # the pipeline's default: exact anywhere


def test_readme_shows_the_kept_report_as_the_tool_renders_it():
    tool = load_tool("int8_exactness")
    reports = sorted((REPO / "reports").glob("int8_exactness_*.json"))
    assert reports, "no kept report"
    readme = (REPO / "README.md").read_text()
    for path in reports:
        assert tool.exactness_block(json.loads(path.read_text()), path.stem) in readme


def test_the_ratio_and_the_no_vnni_speeds_the_readme_quotes_are_the_reports():
    readme = " ".join((REPO / "README.md").read_text().split())
    report = json.loads((REPO / "reports" / "int8_exactness_zen3.json").read_text())
    ways = report["fidelity"]
    ratio = ways["kernels_vs_float"]["mean_kl"] / ways["reference_vs_float"]["mean_kl"]
    assert f"about {round(ratio, -1):.0f} times further from fp32" in readme
    pruned = json.loads((REPO / "reports" / "int8_exactness_zen3_pruned_int8.json").read_text())["fidelity"]
    ratio = pruned["kernels_vs_float"]["mean_kl"] / pruned["reference_vs_float"]["mean_kl"]
    assert f"about {ratio:.0f} times further from `pruned_fp32`" in readme
    pruned_check = json.loads((REPO / "reports" / "runtime_check_zen3_pruned_int8.json").read_text())
    speedup = pruned_check["latency_batch1_10s_1thread"]["onnxruntime:static_int8"]["x_onnxruntime_fp32"]
    assert f"`pruned_int8` ran {speedup:.2f}x ONNX Runtime fp32 on the Zen 3" in readme
    check = json.loads((REPO / "reports" / "runtime_check_zen3.json").read_text())
    latency, gemm = check["latency_batch1_10s_1thread"], check["one_core_gemm"]
    assert check["hardware"]["flags"]["avx512_vnni"] is False
    assert f"`static_int8` ran {latency['onnxruntime:static_int8']['x_onnxruntime_fp32']:.2f}x its fp32" in readme
    assert f"(OpenVINO's {latency['openvino:static_int8']['x_onnxruntime_fp32']:.2f}x)" in readme
    assert f"{gemm['int8_gmacs']} GMAC/s against {gemm['fp32_gmacs']} in fp32" in readme


def test_the_vnni_and_openvino_figures_the_readme_quotes_are_the_reports():
    readme = " ".join((REPO / "README.md").read_text().split())
    reports = REPO / "reports"
    ways = json.loads((reports / "int8_exactness_icelake.json").read_text())["fidelity"]
    seven, eight = ways["seven_bit_vs_float"]["mean_kl"], ways["kernels_vs_float"]["mean_kl"]
    assert f"KL to fp32 {seven:.6f} against {eight:.6f}" in readme
    ways = json.loads((reports / "int8_exactness_icelake_pruned_int8.json").read_text())["fidelity"]
    seven, eight = ways["seven_bit_vs_float"]["mean_kl"], ways["kernels_vs_float"]["mean_kl"]
    assert f"KL to `pruned_fp32` {seven:.6f} against {eight:.6f}" in readme
    capped = json.loads((reports / "int8_exactness_icelake_openvino_avx2.json").read_text())
    assert capped["isa_cap"] == "AVX2" and capped["conv_primitives"]["kernels"].startswith("jit_avx2_I8")
    ratio = capped["fidelity"]["kernels_vs_float"]["mean_kl"] / capped["fidelity"]["reference_vs_float"]["mean_kl"]
    assert f"the 8-bit file as OpenVINO runs it is about {ratio:.0f} times further from fp32" in readme
    wide = json.loads((reports / "int8_exactness_icelake_openvino_avx512_core.json").read_text())
    assert wide["isa_cap"] == "AVX512_CORE" and "avx2" not in wide["conv_primitives"]["kernels"]
    own = {report["fidelity"]["kernels_vs_reference"]["mean_kl"] for report in (capped, wide)}
    assert len(own) == 1 and f"(KL to its own arithmetic {own.pop():.6f} in both)" in readme
    run = json.loads((reports / "pipeline_icelake" / "train_2_epochs.json").read_text())
    minutes, cer = run["wall_seconds"] / 60, run["best_dev_cer"]
    assert f"trained there for 2 epochs ({minutes:.1f} min, dev greedy CER {cer:.2f}" in readme


def test_the_ice_lake_speeds_and_compress_time_the_readme_quotes_are_the_reports():
    readme = " ".join((REPO / "README.md").read_text().split())
    reports = REPO / "reports"
    check = json.loads((reports / "runtime_check_icelake.json").read_text())["latency_batch1_10s_1thread"]
    onnxruntime, openvino = (
        check[f"{runtime}:static_int8"]["x_onnxruntime_fp32"] for runtime in ("onnxruntime", "openvino")
    )
    assert f"on the Ice Lake Xeon {onnxruntime:.2f}x and {openvino:.2f}x ONNX Runtime fp32" in readme
    assert f"`static_int8` {onnxruntime:.2f}x (`reports/runtime_check_icelake.json`)" in readme
    pruned = json.loads((reports / "runtime_check_icelake_pruned_int8.json").read_text())
    rows = pruned["latency_batch1_10s_1thread"]
    int8, fp32 = rows["onnxruntime:static_int8"], rows["onnxruntime:fp32"]
    low, high = int8["ci95"]
    assert (
        f"`pruned_int8` ran {int8['ms']:.2f} ms, **{int8['x_onnxruntime_fp32']:.2f}x faster** than ONNX Runtime fp32 "
        f"({fp32['ms']:.1f} ms; interval over rounds {low:.2f}\u2013{high:.2f}x), in OpenVINO "
        f"{rows['openvino:static_int8']['x_onnxruntime_fp32']:.2f}x" in readme
    )
    seconds = json.loads((reports / "pipeline_icelake" / "compress_200_steps.json").read_text())["fine_tune_seconds"]
    assert (
        f"{seconds:.0f} s for 200 steps" in readme
        and f"so about {seconds * 8 / 60:.0f} min at the default 1,600" in readme
    )
    assert f"about {seconds * 8 / 60:.0f} in fp32 (8 x the {seconds:.0f} s of `compress.steps=200`)" in readme
