"""Running an ONNX file with OpenVINO's CPU plugin, as an ONNX Runtime session is run.

OpenVINO is the second runtime: the benchmark times every variant in it, and the ``bf16``
variant runs only in it (its float layers in bfloat16, which ONNX Runtime's CPU kernels do
not offer). ``OpenVinoSession.run(None, feeds)`` answers as ``InferenceSession.run`` does,
so evaluation and ``transcribe`` take either without knowing which. What precision a
convolution ran in is read from the compiled model, never assumed from the CPU's flags:
OpenVINO quietly runs f32 where a CPU cannot do bf16.

At bf16 the front end stays f32. OpenVINO's bf16 setting lowers every float op, and the
per-utterance normalization sums hundreds of frames with a cumulative sum: in bf16's 8
mantissa bits the mean and variance drift, and on dev 20% of output frames changed their
most likely class. Run in f32 up to the first convolution, 0.09% did, at the same speed
(measured on the 2-core EPYC, 69 dev utterances; ``tests/test_openvino_session.py``).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.utils import Extractor

from speechquant.ctc import LAYER_NAMES
from speechquant.errors import UserError
from speechquant.layers import layer_of

PRECISIONS = ("f32", "bf16")  # OpenVINO's INFERENCE_PRECISION_HINT for the float layers


class NotRunnableHere(UserError):
    """The model is sound, but this machine cannot run it as asked (e.g. bf16 on a CPU without it)."""


def bf16_missing_reason() -> str | None:
    """Why this CPU cannot run bf16 natively, in OpenVINO's own words; None when it can."""
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" in capabilities:
        return None
    return f"this CPU has no native bf16 (OpenVINO's CPU plugin offers {', '.join(capabilities)})"


def conv_kernels(compiled: Any) -> dict[str, dict[str, int]]:
    """The compiled model's convolutions counted by the precision they run in and by the
    oneDNN primitive that runs them (``brgconv_avx512_amx_I8`` says AMX; ``..._bf16`` bf16)."""
    precisions: Counter[str] = Counter()
    primitives: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            precisions[f"Convolution:{info['runtimePrecision'].astype(str)}"] += 1
            primitives[info["primitiveType"].astype(str)] += 1
    return {"precisions": dict(precisions), "primitives": dict(primitives)}


def split_front_end(model: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto, str]:
    """The graph up to the first convolution's input, the rest (which also reads the model's
    inputs, for their lengths and shapes), and the name of the tensor between them."""
    first = next((n for n in model.graph.node if n.op_type == "Conv" and layer_of(n.name) == LAYER_NAMES[0]), None)
    if first is None:
        raise UserError(f"the model has no layer named {LAYER_NAMES[0]}: its front end cannot be kept in f32")
    inputs, outputs = [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    extractor = Extractor(model)
    cut = first.input[0]
    return extractor.extract_model(inputs, [cut]), extractor.extract_model([*inputs, cut], outputs), cut


class OpenVinoSession:
    """An ONNX file compiled for the CPU at ``precision``, answering ``run(None, feeds)``.

    ``concurrent`` callers (evaluation's worker threads) each get their own infer requests on
    their own stream of ``threads`` threads; one request may not be used by two threads. At
    bf16 the front end is a second compiled model, at f32 (see the module's note).
    """

    def __init__(self, path: Path, threads: int = 1, precision: str = "f32", concurrent: int = 1):
        import openvino

        if precision not in PRECISIONS:
            raise UserError(f"{path}: OpenVINO precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if precision == "bf16" and (reason := bf16_missing_reason()):
            raise NotRunnableHere(f"{path} runs in bf16, but {reason}")
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads * concurrent,
            "NUM_STREAMS": concurrent,
        }
        if concurrent == 1:
            config["PERFORMANCE_HINT"] = "LATENCY"
        core = openvino.Core()
        self.front, self.cut = None, ""
        try:
            if precision == "bf16":
                front, network, self.cut = split_front_end(onnx.load(str(path)))
                self.front = core.compile_model(core.read_model(front.SerializeToString()), "CPU", config)
                self.compiled = core.compile_model(core.read_model(network.SerializeToString()), "CPU", config)
            else:
                self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except UserError:
            raise
        except Exception as error:  # OpenVINO's RuntimeError, or protobuf's on a file that is no ONNX model
            first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
            raise NotRunnableHere(f"OpenVINO cannot compile {path}: {first_line}") from None
        self.kernels = conv_kernels(self.compiled)
        if precision == "bf16" and "Convolution:bf16" not in self.kernels["precisions"]:
            raise NotRunnableHere(f"{path}: OpenVINO ran no convolution in bf16 ({self.kernels['precisions']})")
        self.output_names = [_onnx_name(port) for port in self.compiled.outputs]
        self._local = threading.local()

    def inputs(self) -> dict[str, list[int | None]]:
        """Input names and shapes, a dynamic dimension as None (as ONNX Runtime lists them)."""
        ports = (self.front or self.compiled).inputs  # what a caller feeds, not the tensor between the two
        return {_onnx_name(port): _dimensions(port.get_partial_shape()) for port in ports}

    def outputs(self) -> list[tuple[str, list[int | None]]]:
        return [(_onnx_name(port), _dimensions(port.get_partial_shape())) for port in self.compiled.outputs]

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = [m.create_infer_request() for m in (self.front, self.compiled) if m]
        if self.front is not None:
            feeds = {**feeds, self.cut: requests[0].infer(feeds)[0]}
        results = requests[-1].infer(feeds)  # copies: the request's buffers are reused by its next call
        by_name = {_onnx_name(port): value for port, value in results.items()}
        return [by_name[name] for name in (names or self.output_names)]


def _onnx_name(port: Any) -> str:
    """The ONNX name of a port: OpenVINO may also give an input the name of the op behind it."""
    names, friendly = port.get_names(), port.get_node().get_friendly_name()
    return friendly if friendly in names else sorted(names)[0]


def _dimensions(shape: Any) -> list[int | None]:
    return [dimension.get_length() if dimension.is_static else None for dimension in shape]
