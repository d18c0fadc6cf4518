"""Where an ONNX model's time goes in ONNX Runtime: per operator type, on one thread, for 10 s of audio.

int8 convolutions run near the CPU's int8 GEMM peak (the benchmark's ``share_of_peak``), so
what else a quantized graph runs (DequantizeLinear, ReLU and padding masks in float, the
length arithmetic between layers) is what is left to win. This tool runs each model given
under ORT's profiler, batch 1, 1 thread, the benchmark's 10 s input built from dev features,
and sums the kernel time per operator type. It writes a JSON report with the hardware stamp,
and prints, per model, the share spent in convolutions and the largest other operators. With
``--readme`` it writes that table into README.md between its markers. A model may be given a
label, ``label=path``, e.g. a file of an earlier run taken from the DVC cache by its md5 in
that commit's ``dvc.lock``:

    python tools/op_profile.py models/quantized/pruned_int8.onnx \\
        pruned_int8@7a2fb46=.dvc/cache/files/md5/b3/... --output reports/op_profile.json --readme

About 15 s a model; the models take turns run by run. Profiling adds a little time to every
node, so the totals run above the benchmark's latencies; compare shares, and models with each
other, not with it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from compress_sweep import readme_with

from speechquant.benchmark import benchmark_inputs
from speechquant.fileio import write_json
from speechquant.hardware import hardware_stamp, machine_words
from speechquant.lock import file_md5
from speechquant.store import Store

SECONDS = 10.0
RUNS = 100
CONVOLUTIONS = ("Conv", "QLinearConv", "ConvInteger", "FusedConv")
PROFILE_BEGIN = "<!-- op profile: written by tools/op_profile.py from reports/op_profile.json -->"
PROFILE_END = "<!-- end of op profile -->"


def profile(
    paths: dict[str, Path], features: np.ndarray, lengths: np.ndarray, runs: int = RUNS
) -> dict[str, dict[str, float]]:
    """Per model, mean kernel milliseconds per run by operator type, over ``runs`` runs after a
    warm-up run. The models take turns run by run, so that a drift of the machine's speed (it is
    shared) falls on all of them alike rather than on whichever ran last."""
    feed = {"features": features, "lengths": lengths}
    with tempfile.TemporaryDirectory() as scratch:
        sessions = {}
        for index, (label, path) in enumerate(paths.items()):
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(scratch) / f"profile{index}")
            sessions[label] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            for session in sessions.values():
                session.run(None, feed)
        results = {}
        for label, session in sessions.items():
            times = kernel_times(json.loads(Path(session.end_profiling()).read_text()))
            results[label] = {op: round(microseconds / runs / 1000, 4) for op, microseconds in times.most_common()}
    return results


def kernel_times(events: list[dict[str, Any]]) -> Counter:
    """Microseconds of kernel time per operator type in an ORT profile's events, leaving out the
    first run (the warm-up's allocations and first-touch faults)."""
    warm_up_end = min(event["ts"] + event["dur"] for event in events if event["name"] == "model_run")
    times: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] > warm_up_end:
            times[event["args"]["op_name"]] += event["dur"]
    return times


def summary(path: Path, times: dict[str, float]) -> dict[str, Any]:
    total = sum(times.values())
    convolutions = sum(ms for op, ms in times.items() if op in CONVOLUTIONS)
    return {
        "md5": file_md5(path),
        "nodes": len(onnx.load(str(path)).graph.node),
        "total_ms": round(total, 3),
        "convolution_ms": round(convolutions, 3),
        "convolution_share": round(convolutions / total, 4),
        "by_operator_ms": times,
    }


def largest_others(result: dict[str, Any], count: int = 4) -> list[tuple[str, float]]:
    return [(op, ms) for op, ms in result["by_operator_ms"].items() if op not in CONVOLUTIONS][:count]


def profile_block(report: dict[str, Any]) -> str:
    """The README's table of the report, markers included."""
    lines = [
        PROFILE_BEGIN,
        "",
        f"Kernel time per run by operator, ONNX Runtime's profiler, batch 1, {report['threads']} thread, "
        f"{report['seconds']:.0f} s of dev features, mean of {report['runs']} runs; "
        f"{machine_words(report['machine'])}:",
        "",
        "| model | md5 | nodes | ms | in convolutions | largest others, ms |",
        "|---|---|---|---|---|---|",
    ]
    for label, result in report["models"].items():
        others = ", ".join(f"{op} {ms:.3f}" for op, ms in largest_others(result))
        lines.append(
            f"| `{label}` | {result['md5'][:8]} | {result['nodes']} | {result['total_ms']:.2f} | "
            f"{result['convolution_share']:.1%} | {others} |".replace("%", " %")
        )
    return "\n".join([*lines, "", PROFILE_END])


def labelled(argument: str) -> tuple[str, Path]:
    """``label=path`` or a bare path, labelled by itself."""
    label, _, path = argument.rpartition("=")
    return (label or path), Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="ONNX files (path or label=path), each profiled alone")
    parser.add_argument("--features", type=Path, default=Path("data/features/dev"))
    parser.add_argument("--output", type=Path, help="the JSON report (default: print only)")
    parser.add_argument("--readme", action="store_true", help="write the report's table into README.md")
    args = parser.parse_args()
    models = dict(labelled(argument) for argument in args.models)
    for path in models.values():
        if not path.is_file():
            raise SystemExit(f"error: {path} is not a file")
    if args.readme and not args.output:
        raise SystemExit("error: --readme needs --output: the README's table is the report's")
    features, lengths = benchmark_inputs(Store(args.features), 1, SECONDS)
    times = profile(models, features, lengths)
    results = {label: summary(path, times[label]) for label, path in models.items()}
    for label, result in results.items():
        others = ", ".join(f"{op} {ms:.3f}" for op, ms in largest_others(result))
        print(f"{label}: {result['total_ms']:.2f} ms, {result['convolution_share']:.1%} in convolutions; {others}")
    if args.output:
        report = {
            "machine": hardware_stamp(),
            "batch": 1,
            "seconds": SECONDS,
            "threads": 1,
            "runs": RUNS,
            "models": results,
        }
        write_json(args.output, report)
        if args.readme:
            readme = Path("README.md")
            readme.write_text(readme_with(readme.read_text(), profile_block(report), PROFILE_BEGIN, PROFILE_END))


if __name__ == "__main__":
    main()
