"""Whether the runtime will compute an int8 file's arithmetic on this CPU, or saturate it.

Without VNNI, ONNX Runtime and OpenVINO (oneDNN's ``jit_avx2_I8``) both multiply uint8
activations by int8 weights with VPMADDUBSW, which adds each pair of products into 16 bits
with saturation; weights within [-64, 64] keep every pair below 32,768 (2 x 255 x 64), wider
ones do not. Measured on a Zen 3 (README, *int8 on a CPU without VNNI*;
``tools/int8_exactness.py``), an 8-bit ``static_int8`` ran in ONNX Runtime about 30 times
further from fp32 than its own arithmetic; OpenVINO was measured with oneDNN capped at AVX2
on a VNNI Xeon. So the quantize stage makes 7-bit weights by default (``quant.weight_bits``)
and checks the files it writes (``verify.py``); ``speechquant transcribe`` warns when it is
given an 8-bit file on such a CPU, so that a user learns it before trusting the transcripts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

SEVEN_BIT_LIMIT = 64  # the largest |weight| whose pair of products with uint8 cannot saturate int16
RUNTIME_WORDS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def has_vnni(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has a VNNI dot product (AVX-512 VNNI or the 256-bit AVX-VNNI), which both
    runtimes use for uint8 x int8 instead of VPMADDUBSW; ``cpuinfo`` is /proc/cpuinfo's text."""
    if cpuinfo is None:
        proc = Path("/proc/cpuinfo")
        cpuinfo = proc.read_text() if proc.exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_vnni" in flags or "avx_vnni" in flags


def int8_weight_peaks(path: Path) -> dict[str, int]:
    """The largest |value| of each signed int8 weight tensor of ``path`` (QDQ or ConvInteger)."""
    return {
        tensor.name: int(np.abs(numpy_helper.to_array(tensor).astype(np.int16)).max())
        for tensor in onnx.load(str(path)).graph.initializer
        if tensor.data_type == onnx.TensorProto.INT8 and tensor.dims[1:]  # a weight, not a zero-point vector
    }


def wide_int8_weights(path: Path) -> list[str]:
    """The signed int8 weight tensors of ``path`` with values beyond 7 bits."""
    return [name for name, peak in int8_weight_peaks(path).items() if peak > SEVEN_BIT_LIMIT]


def saturation_warning(path: Path, runtime: str, cpuinfo: str | None = None) -> str | None:
    """One warning line when ``runtime`` on this CPU will saturate ``path``'s int8 products; else None."""
    if has_vnni(cpuinfo):
        return None
    wide = wide_int8_weights(path)
    if not wide:
        return None
    return (
        f"warning: {path} has int8 weights beyond 7 bits ({len(wide)} tensors), and this CPU has no VNNI: "
        f"{RUNTIME_WORDS[runtime]} saturates their products with uint8 activations, so its output is not the file's "
        "arithmetic (README: int8 on a CPU without VNNI). A file made with 7-bit weights runs exactly: "
        "quant.weight_bits: 7, the default"
    )
