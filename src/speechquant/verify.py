"""What a made variant actually runs, checked against what its name promises, and its numbers."""

from __future__ import annotations

import gzip
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from speechquant.ctc import LAYER_NAMES
from speechquant.errors import UserError
from speechquant.fileio import size_mb
from speechquant.layers import layer_of
from speechquant.openvino_session import NotRunnableHere, OpenVinoSession
from speechquant.peak import conv_weight_shapes, macs_per_output_frame
from speechquant.runtime import open_model, session
from speechquant.saturation import int8_weight_peaks
from speechquant.variants import recipe_for

INT8_KERNELS = ("QLinearConv", "ConvInteger")
FLOAT_BEHIND_DEQUANTIZE = "Conv behind DequantizeLinear"


def conv_kernels(path: Path) -> dict[str, str]:
    """The kernel each layer runs after ONNX Runtime's optimizations, by layer name.

    Read from the optimized graph, not the file on disk: a QDQ model whose quantization
    ORT could not fuse runs a float ``Conv`` behind ``DequantizeLinear``, not int8.
    """
    with tempfile.TemporaryDirectory() as scratch:
        optimized = Path(scratch) / "optimized.onnx"
        session(path, optimized)
        graph = onnx.load(str(optimized)).graph
    producers = {output: node for node in graph.node for output in node.output}
    kernels: dict[str, str] = {}
    for node in graph.node:
        if "Conv" not in node.op_type:
            continue
        if node.op_type in INT8_KERNELS:
            kernel = node.op_type
        elif node.input[1] in producers and producers[node.input[1]].op_type == "DequantizeLinear":
            kernel = FLOAT_BEHIND_DEQUANTIZE
        else:
            kernel = "Conv"
        layer = layer_of(node.name)  # a low-rank layer runs int8 only if both its convs do
        if kernels.get(layer) in (None, *INT8_KERNELS):
            kernels[layer] = kernel
    return {layer: kernels[layer] for layer in LAYER_NAMES if layer in kernels}


def check_kernels(variant: str, kernels: dict[str, str], keep_float: list[str]) -> None:
    """Fail when an int8 variant does not run exactly its quantized layers with int8 kernels."""
    if sorted(kernels) != sorted(LAYER_NAMES):
        raise UserError(f"{variant}: optimized graph has conv layers {sorted(kernels)}, expected all of conv0..conv10")
    if recipe_for(variant).kind not in ("dynamic", "static", "qat"):
        return
    int8 = [layer for layer, kernel in kernels.items() if kernel in INT8_KERNELS]
    if not int8:
        raise UserError(f"{variant} is named int8 but runs every conv in float: {kernels}")
    floating = [layer for layer in LAYER_NAMES if kernels[layer] not in INT8_KERNELS]
    if floating != keep_float:
        raise UserError(f"{variant}: layers {floating} run in float, but only {keep_float} should: {kernels}")


def max_logprob_difference(reference: Path, variant: Any, inputs: list[dict[str, np.ndarray]]) -> float:
    """Largest absolute log-probability difference between the reference file and ``variant``
    (a session of either runtime) over the given inputs."""
    first, second = session(reference), variant
    return max(
        float(np.abs(first.run(["log_probs"], feed)[0] - second.run(["log_probs"], feed)[0]).max()) for feed in inputs
    )


def check_weight_range(variant: str, path: Path, weight_limit: int) -> int | None:
    """The largest |signed int8 weight| in ``path`` (None: it has none); fails above ``weight_limit``,
    so that a file promised 7-bit (exact without VNNI) cannot hold a wider weight unnoticed."""
    peaks = int8_weight_peaks(path)
    if not peaks:
        return None
    wide = sorted(name for name, peak in peaks.items() if peak > weight_limit)
    if wide:
        raise UserError(
            f"{variant}: int8 weights beyond [-{weight_limit}, {weight_limit}] (quant.weight_bits) in {', '.join(wide)}"
        )
    return max(peaks.values())


def report(
    variant: str,
    path: Path,
    reference: Path,
    keep_float: list[str],
    check_inputs: list[dict],
    weight_limit: int = 127,
) -> dict[str, Any]:
    """The guards and numbers of ``metrics/quantize/<variant>.json``."""
    kernels = conv_kernels(path)
    check_kernels(variant, kernels, keep_float)
    int8_weight_max = check_weight_range(variant, path, weight_limit)
    recipe = recipe_for(variant)
    ran: dict[str, Any] = {"runs_in": f"{recipe.runs_in.runtime} {recipe.runs_in.precision}"}
    try:
        model = open_model(path)  # in the runtime and precision the file names
        ran["max_abs_logprob_diff_vs_fp32"] = round(max_logprob_difference(reference, model.session, check_inputs), 6)
        if isinstance(model.session, OpenVinoSession):
            ran["openvino_kernels"] = model.session.kernels
    except NotRunnableHere as error:  # a bf16 file on a CPU without bf16: made, not run here
        ran.update(max_abs_logprob_diff_vs_fp32=None, not_run_here=str(error))
    return {
        "variant": variant,
        "size_mb": round(size_mb(path), 3),
        "gzip_mb": round(len(gzip.compress(path.read_bytes(), compresslevel=6)) / 1e6, 3),  # what a user downloads
        "parameters": sum(  # weights and biases
            int(np.prod(shape)) + shape[0] for shapes in conv_weight_shapes(path).values() for shape in shapes
        ),
        "macs_per_output_frame": macs_per_output_frame(path),
        "size_vs_fp32": round(size_mb(path) / size_mb(reference), 4),
        "smaller_than_fp32": round(size_mb(reference) / size_mb(path), 3),
        "weight_type": recipe.weight_type.name if recipe.weight_type is not None else recipe.kind,
        "conv_kernels": dict(Counter(kernels.values())),
        "float_layers": [layer for layer in LAYER_NAMES if kernels[layer] not in INT8_KERNELS],
        "int8_weight_max": int8_weight_max,
        **ran,
        "check_utterances": len(check_inputs),
        "session_loads": True,
    }


def summary_line(metrics: dict[str, Any]) -> str:
    return (
        f"{metrics['variant']}: {metrics['size_mb']} MB ({metrics['smaller_than_fp32']}x smaller), "
        f"kernels {metrics['conv_kernels']}, float layers {metrics['float_layers']}, "
        f"runs in {metrics['runs_in']}, max |log-prob diff| vs fp32 {metrics['max_abs_logprob_diff_vs_fp32']}"
        + (f" (not run: {metrics['not_run_here']})" if "not_run_here" in metrics else "")
    )
