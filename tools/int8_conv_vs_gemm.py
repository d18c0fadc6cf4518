"""How fast ONNX Runtime runs each int8 layer of ``pruned_int8`` as a convolution, and how fast its
own int8 GEMM would do the same multiply-accumulates.

    python tools/int8_conv_vs_gemm.py [--output reports/int8_conv_vs_gemm.json]   # about 1 min
    python tools/int8_conv_vs_gemm.py --readme-only   # the README's table again, from the report

Why: the benchmark's ``share_of_peak`` compares every int8 model with ONNX Runtime's one-core
uint8 x int8 GEMM. On a Xeon with AMX that GEMM is 7.6x the fp32 one, yet the int8 convolutions
reached less than half of it (REPORT's machine, ``reports/pipeline_xeon_amx/``). This tool
separates the layers: each layer shape of the default compressed model (the default preset's
widths, ``compress.ranks``' low-rank pairs, 10 s of audio at batch 1) is made as a float conv
with random weights, quantized by the static QDQ recipe (uint8 activations, per-channel int8
weights) and timed in one thread; then one ``MatMulInteger`` over the same layer's im2col rows
(frames x input channels x taps) is timed alike. The int8 conv's time includes quantizing its
input and dequantizing its output, as a layer between two float ops would; the GEMM's does not
include building the rows. Best of 7 rounds of 30 runs, after 10 warm-up runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from compress_sweep import readme_with
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from speechquant.compress import DEFAULT_RANKS
from speechquant.ctc import LAYER_NAMES, LAYERS, ConvGeometry
from speechquant.hardware import hardware_stamp, machine_words
from speechquant.model import PRESETS

TABLE_BEGIN = "<!-- int8 conv vs gemm: written by tools/int8_conv_vs_gemm.py from reports/int8_conv_vs_gemm.json -->"
TABLE_END = "<!-- end of int8 conv vs gemm -->"
FRAMES = 1000  # 10 s of 10 ms frames; conv0's stride halves them for every later layer


def default_layers() -> dict[str, tuple[int, int, ConvGeometry, int]]:
    """Per distinct int8 layer of the default compressed model: input and output channels, geometry
    and input frames (the default preset's widths, the stage's default ranks; conv10 is left out)."""
    widths, ranks = PRESETS["default"].widths(), DEFAULT_RANKS
    conv0, conv1, conv8, conv9 = (LAYERS[LAYER_NAMES.index(name)] for name in ("conv0", "conv1", "conv8", "conv9"))
    frames = FRAMES // conv0.stride
    return {
        "conv0_taps": (widths[0], ranks["conv0"], conv0, FRAMES),
        "conv1 (as conv1-conv7)": (widths[1], widths[2], conv1, frames),
        "conv8_taps": (widths[8], ranks["conv8"], conv8, frames),
        "conv8_mix": (ranks["conv8"], widths[9], conv9, frames),  # a 1x1 conv, as conv9
        "conv9": (widths[9], widths[10], conv9, frames),
    }


class RandomInputs(CalibrationDataReader):
    """Four random inputs in [0, 1): what the layer reads after a ReLU, for the ranges only."""

    def __init__(self, channels: int, frames: int):
        rng = np.random.default_rng(0)
        self.inputs = iter([{"x": rng.random((1, channels, frames), dtype=np.float32)} for _ in range(4)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.inputs, None)


def seconds_per_run(path: Path, feed: dict[str, np.ndarray]) -> float:
    """The best round's mean seconds per run, one thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(10):
        session.run(None, feed)
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(30):
            session.run(None, feed)
        best = min(best, (time.perf_counter() - started) / 30)
    return best


def int8_conv(folder: Path, inputs: int, outputs: int, geometry: ConvGeometry, frames: int) -> Path:
    """A float conv of the layer's shape, quantized by the static QDQ recipe."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(inputs, outputs, geometry.kernel, geometry.stride, geometry.padding).eval()
    float_path, int8_path = folder / "conv.onnx", folder / "conv_int8.onnx"
    example = (torch.randn(1, inputs, frames),)
    torch.onnx.export(conv, example, str(float_path), input_names=["x"], output_names=["y"], dynamo=False)
    quantize_static(
        str(float_path),
        str(int8_path),
        RandomInputs(inputs, frames),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return int8_path


def int8_gemm(folder: Path, rows: int, depth: int, outputs: int) -> Path:
    """One MatMulInteger, uint8 rows x int8 weights: the layer's multiply-accumulates as a GEMM."""
    weights = np.random.default_rng(0).integers(-127, 128, (depth, outputs)).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [rows, depth])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [rows, outputs])],
        [numpy_helper.from_array(weights, "b")],
    )
    path = folder / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def measure() -> dict[str, Any]:
    """Per layer: MACs, the int8 conv's and the GEMM's time and rate."""
    rows_by_layer: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, (inputs, outputs, geometry, frames) in default_layers().items():
            rows = (frames + 2 * geometry.padding - geometry.kernel) // geometry.stride + 1
            depth = inputs * geometry.kernel
            macs = rows * depth * outputs
            feed = {"x": rng.random((1, inputs, frames), dtype=np.float32)}
            conv = seconds_per_run(int8_conv(folder, inputs, outputs, geometry, frames), feed)
            gemm_feed = {"a": rng.integers(0, 256, (rows, depth)).astype(np.uint8)}
            gemm = seconds_per_run(int8_gemm(folder, rows, depth, outputs), gemm_feed)
            rows_by_layer[name] = {
                "macs": macs,
                "int8_conv_ms": round(conv * 1e3, 3),
                "int8_gemm_ms": round(gemm * 1e3, 3),
                "int8_conv_gmacs": round(macs / conv / 1e9, 1),
                "int8_gemm_gmacs": round(macs / gemm / 1e9, 1),
            }
            print(name, rows_by_layer[name], flush=True)
    return {"machine": hardware_stamp(), "layers": rows_by_layer}


def rows(report: dict[str, Any]) -> str:
    """The report as a captioned table: one row per layer."""
    lines = [
        f"One int8 layer at batch 1, 10 s, one thread; {machine_words(report['machine'])}:",
        "",
        "| layer | MACs | int8 conv ms | GMAC/s | int8 GEMM ms | GMAC/s | GEMM's speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in report["layers"].items():
        ratio = row["int8_conv_ms"] / row["int8_gemm_ms"]
        lines.append(
            f"| {name} | {row['macs'] / 1e6:.0f} M | {row['int8_conv_ms']:.3f} | {row['int8_conv_gmacs']:.0f} | "
            f"{row['int8_gemm_ms']:.3f} | {row['int8_gemm_gmacs']:.0f} | {ratio:.1f}x |"
        )
    return "\n".join(lines)


def table(report: dict[str, Any]) -> str:
    """The README's table of the report, markers included."""
    return "\n".join([TABLE_BEGIN, "", rows(report), "", TABLE_END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("reports/int8_conv_vs_gemm.json"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--readme-only", action="store_true", help="write the README table from --output only")
    args = parser.parse_args()
    if args.readme_only:
        report = json.loads(args.output.read_text())
    else:
        report = measure()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    args.readme.write_text(readme_with(args.readme.read_text(encoding="utf-8"), table(report), TABLE_BEGIN, TABLE_END))


if __name__ == "__main__":
    main()
