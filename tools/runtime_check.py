"""Which kernels ONNX Runtime and OpenVINO run on this CPU, and how fast, in two minutes.

The benchmark stage answers this for the machine that runs the pipeline; this answers it
for another machine (an AMX Xeon, say) with two ONNX files and no DVC, PyTorch or data:
``python tools/runtime_check.py --fp32 models/quantized/fp32.onnx --int8
models/quantized/static_int8.onnx --output reports/runtime_check_<machine>.json``. It
writes the hardware stamp, ONNX Runtime's one-core GEMM rates, and per runtime and
precision the one-thread latency of 10 s of (random) features, timed in interleaved rounds,
with the precision and oneDNN primitive of every OpenVINO convolution
(``brgconv_avx512_amx_I8`` is AMX).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import openvino

from speechquant.hardware import hardware_stamp
from speechquant.openvino_session import NotRunnableHere, OpenVinoSession
from speechquant.peak import gemm_gmacs
from speechquant.timing import paired_speedup, time_interleaved

FRAMES = 1000  # 10 s at a 10 ms hop
ROUNDS = 20


def timed_rounds(runners: dict[str, Callable[..., Any]], features: np.ndarray, lengths: np.ndarray) -> dict:
    """Each runner's median ms and its within-round speed-up over the first (with its 95%
    interval), timed as the benchmark stage times: interleaved, rotated rounds after a warm-up."""
    times = time_interleaved(runners, features, lengths, ROUNDS, warmup=1)
    first = next(iter(times.values()))
    rows = {}
    for name, values in times.items():
        speedup, interval = paired_speedup(first, values)
        rows[name] = {"ms": round(float(np.median(values)) * 1000, 2), "x_onnxruntime_fp32": speedup, "ci95": interval}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--int8", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    features = np.random.default_rng(0).standard_normal((1, FRAMES, 40)).astype(np.float32)
    lengths = np.array([FRAMES])
    result: dict[str, Any] = {
        "hardware": hardware_stamp(),
        "openvino": openvino.__version__,
        "openvino_capabilities": openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
        "one_core_gemm": {"fp32_gmacs": round(gemm_gmacs(False), 1), "int8_gmacs": round(gemm_gmacs(True), 1)},
    }
    runners: dict[str, Callable[..., Any]] = {}
    for name, path in (("fp32", args.fp32), ("static_int8", args.int8)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # not speechquant.runtime: it needs the audio libraries
        model = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        runners[f"onnxruntime:{name}"] = lambda f, n, m=model: m.run(None, {"features": f, "lengths": n})
    kernels, skipped = {}, {}
    openvino_rows = (("fp32", args.fp32, "f32"), ("bf16", args.fp32, "bf16"), ("static_int8", args.int8, "f32"))
    for name, path, precision in openvino_rows:
        try:
            model = OpenVinoSession(path, 1, precision)
        except NotRunnableHere as error:
            skipped[f"openvino:{name}"] = str(error)
            continue
        runners[f"openvino:{name}"] = lambda f, n, m=model: m.run(None, {"features": f, "lengths": n})
        kernels[f"openvino:{name}"] = model.kernels
    rows = timed_rounds(runners, features, lengths)
    result["latency_batch1_10s_1thread"] = {name: {**row, **kernels.get(name, {})} for name, row in rows.items()}
    result["skipped"] = skipped
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
