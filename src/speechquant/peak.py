"""How far each variant is from what this CPU can do: the runtime's own GEMM throughput on
one core, and the multiply-accumulates the model needs.

A latency alone does not say whether a variant is slow because its kernels are poor or
because it asks for much work. ONNX Runtime's matrix multiply of two 1024x1024 matrices,
in fp32 and in uint8 x int8 (the MLAS kernels its convolutions run on), measures the
core's usable peak; the model's MACs follow exactly from its convolutions' weights,
strides and paddings. Their ratio is the share of the peak a variant reaches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from speechquant.ctc import LAYER_NAMES, LAYERS, conv_output_length, output_frames
from speechquant.errors import UserError
from speechquant.layers import layer_of

GEMM_SIZE = 1024  # square: large enough for the kernels' steady state, small enough to stay in cache tiers
GEMM_ROUNDS = 7


def _gemm_model(integer: bool, size: int) -> bytes:
    """A one-node model: A (input) times a constant B, fp32 MatMul or uint8 x int8 MatMulInteger."""
    rng = np.random.default_rng(0)
    if integer:
        weight = rng.integers(-128, 128, size=(size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["c"])
        inputs = [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])]
        outputs = [helper.make_tensor_value_info("c", TensorProto.INT32, [size, size])]
    else:
        weight = rng.standard_normal((size, size)).astype(np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["c"])
        inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])]
        outputs = [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])]
    graph = helper.make_graph([node], "gemm", inputs, outputs, [numpy_helper.from_array(weight, "b")])
    # IR 10, not the onnx package's newest: an older onnxruntime (1.30 reads up to 13) must load it too
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return model.SerializeToString()


def gemm_runner(integer: bool, size: int = GEMM_SIZE) -> Callable[..., Any]:
    """One call of ONNX Runtime's GEMM on one thread, taking (and ignoring) a model's inputs, so
    that the benchmark times it in the same interleaved rounds as the variants: a peak measured
    apart, in a quiet or a busy moment, would flatter or shame every share."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(_gemm_model(integer, size), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (size, size), dtype=np.uint8) if integer else rng.standard_normal((size, size))
    feed = {"a": a if integer else a.astype(np.float32)}
    return lambda *_: session.run(None, feed)


def gmacs(seconds: float, size: int = GEMM_SIZE) -> float:
    """The rate of one size x size x size GEMM call that took ``seconds``."""
    return size**3 / seconds / 1e9


def gemm_gmacs(integer: bool, size: int = GEMM_SIZE, rounds: int = GEMM_ROUNDS) -> float:
    """Billions of multiply-accumulates per second of ONNX Runtime's GEMM on one thread (best round)."""
    run = gemm_runner(integer, size)
    run()  # warm-up: packing and first-touch
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return gmacs(best, size)


def conv_weight_shapes(model_path: Path) -> dict[str, list[tuple[int, ...]]]:
    """Each layer's conv weight shapes (two for a low-rank layer), layers in network order; stored
    float, as int8 behind DequantizeLinear (static and QAT files) or as ConvInteger's own: a
    compressed variant's are its own, not fp32's."""
    model = onnx.load(str(model_path), load_external_data=False)
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    found: dict[str, list[tuple[int, ...]]] = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvInteger"):
            weight = node.input[1]
            while weight not in shapes and weight in producers:  # DequantizeLinear (or a Cast) before it
                weight = producers[weight].input[0]
            found.setdefault(layer_of(node.name), []).append(shapes[weight])
    if sorted(found) != sorted(LAYER_NAMES):
        raise UserError(
            f"{model_path}: convolutions with readable weights in layers {sorted(found)}, expected {list(LAYER_NAMES)}"
        )
    return {layer: found[layer] for layer in LAYER_NAMES}


def layer_macs(model_path: Path, input_frames: int) -> dict[str, int]:
    """Each layer's multiply-accumulates for one utterance of ``input_frames`` feature frames:
    its output frames (from kernel, stride and padding) times its weights' size (a low-rank
    layer's 1x1 conv runs on the same frames as its taps)."""
    macs, frames = {}, input_frames
    for (name, shapes), geometry in zip(conv_weight_shapes(model_path).items(), LAYERS, strict=True):
        frames = conv_output_length(frames, geometry)
        macs[name] = int(frames * sum(np.prod(shape) for shape in shapes))
    return macs


def macs_per_output_frame(model_path: Path, seconds: float = 10.0, hop_ms: float = 10.0) -> int:
    """Multiply-accumulates per output frame on a long utterance (edges amortized)."""
    frames = round(seconds * 1000 / hop_ms)
    return round(sum(layer_macs(model_path, frames).values()) / output_frames(frames))


def share_of_peak(
    macs: dict[str, int], float_layers: list[str], seconds_per_call: float, peak: dict[str, float]
) -> float:
    """The share of the peak a call reached: the time the measured GEMM rates would need for the
    call's MACs (float layers at the fp32 rate, the others at the int8 rate) over its latency."""
    ideal = sum(
        count / (peak["fp32_gmacs"] if name in float_layers else peak["int8_gmacs"]) / 1e9
        for name, count in macs.items()
    )
    return ideal / seconds_per_call
