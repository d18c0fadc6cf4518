"""DVC stage `benchmark`: latency, real-time factor, session time, peak memory and size of
every variant, side by side in one process, with ratios to fp32 and a hardware stamp."""

import argparse
from pathlib import Path

from tqdm import tqdm

from speechquant.benchmark import (
    BenchmarkOptions,
    benchmark_inputs,
    hardware_stamp,
    latency_summary,
    onnx_runner,
    peak_memory_mb,
    pytorch_runner,
    thread_count,
    time_interleaved,
)
from speechquant.errors import UserError, exit_on_user_error
from speechquant.fileio import size_mb, write_csv, write_json
from speechquant.params import build, load_params, section
from speechquant.store import Store
from speechquant.summary import PYTORCH

REFERENCE = "fp32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--features", type=Path, default=Path("data/features/dev"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/benchmark.json"))
    parser.add_argument("--plot", type=Path, default=Path("plots/benchmark/latency_vs_batch.csv"))
    args = parser.parse_args()
    params = load_params()
    options = build(BenchmarkOptions, section(params, "benchmark"), "benchmark")
    variants = list(section(params, "quant")["variants"])
    if REFERENCE not in variants:
        raise UserError(f"the benchmark needs {REFERENCE!r} in quant.variants: every ratio is taken to it")
    paths = {variant: args.models_dir / f"{variant}.onnx" for variant in variants}
    store = Store(args.features)

    latency: dict[str, dict[str, dict]] = {}
    session_seconds: dict[str, float] = {}
    steps = [(t, b, s) for t in options.threads for b, s in options.configurations()]
    for threads, batch, seconds in tqdm(steps, desc="benchmark"):
        runners = {}
        for variant, path in paths.items():
            runners[variant], created = onnx_runner(path, threads)
            session_seconds.setdefault(variant, round(created, 4))
        if options.pytorch:
            runners[PYTORCH], created = pytorch_runner(args.checkpoint, threads)
            session_seconds.setdefault(PYTORCH, round(created, 4))
        features, lengths = benchmark_inputs(store, batch, seconds)
        times = time_interleaved(runners, features, lengths, options.rounds, options.warmup)
        key = f"batch{batch}_{seconds:g}s_{'all' if threads == 0 else threads}thread"
        summaries = {name: latency_summary(values, batch, seconds) for name, values in times.items()}
        for name, summary in summaries.items():
            summary["speedup_vs_fp32"] = round(summaries[REFERENCE]["latency_ms_p50"] / summary["latency_ms_p50"], 3)
            latency.setdefault(name, {})[key] = summary

    memory_batch, memory_seconds = max(options.batches), sorted(options.seconds)[len(options.seconds) // 2]
    fp32_size = size_mb(paths[REFERENCE])
    metrics = {"hardware": {**hardware_stamp(), "threads_all": thread_count(0)}, "variants": {}}
    for variant, path in tqdm(paths.items(), desc="peak memory"):
        memory = peak_memory_mb(path, 0, memory_batch, memory_seconds, store)
        metrics["variants"][variant] = {
            "size_mb": round(size_mb(path), 3),
            "size_ratio_vs_fp32": round(fp32_size / size_mb(path), 3),
            "session_seconds": session_seconds[variant],
            **memory,
            "latency": latency[variant],
        }
    if options.pytorch:
        metrics["variants"][PYTORCH] = {"session_seconds": session_seconds[PYTORCH], "latency": latency[PYTORCH]}
    metrics["memory_measured_at"] = f"batch {memory_batch}, {memory_seconds:g} s, all threads"
    write_json(args.metrics, metrics)
    middle = sorted(options.seconds)[len(options.seconds) // 2]
    rows = [
        {
            "batch": batch,
            **{
                name: per_key[f"batch{batch}_{middle:g}s_1thread"]["latency_ms_p50"]
                for name, per_key in latency.items()
            },
        }
        for batch in sorted(options.batches)
        if 1 in options.threads
    ]
    write_csv(args.plot, rows)
    headline = next((k for k in latency[REFERENCE] if k.startswith("batch1_") and k.endswith("_1thread")), None)
    for name, per_key in latency.items():
        if headline and headline in per_key:
            print(
                f"{name:>20}: {per_key[headline]['latency_ms_p50']:9.2f} ms p50 ({headline}), "
                f"{per_key[headline]['speedup_vs_fp32']:.2f}x fp32"
            )


if __name__ == "__main__":
    exit_on_user_error(main)
