"""DVC stage `benchmark`: latency, real-time factor, session time, peak memory and size of
every variant, side by side in one process, with ratios to fp32 and a hardware stamp."""

import argparse
import json
from pathlib import Path

from speechquant.benchmark import BenchmarkOptions, control_lines, headline_lines, run_benchmark
from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_csv, write_json
from speechquant.params import build, load_params, section
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--features", type=Path, default=Path("data/features/dev"))
    parser.add_argument("--quantize-metrics", type=Path, default=Path("metrics/quantize"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/benchmark.json"))
    parser.add_argument("--plot", type=Path, default=Path("plots/benchmark/latency_vs_batch.csv"))
    args = parser.parse_args()
    params = load_params()
    options = build(BenchmarkOptions, section(params, "benchmark"), "benchmark")
    variants = section(params, "quant")["variants"]
    paths = {variant: args.models_dir / f"{variant}.onnx" for variant in variants}
    float_layers = {
        v: json.loads((args.quantize_metrics / f"{v}.json").read_text(encoding="utf-8"))["float_layers"]
        for v in variants
    }
    metrics, rows = run_benchmark(options, paths, args.checkpoint, Store(args.features), float_layers)
    write_json(args.metrics, metrics)
    write_csv(args.plot, rows)
    print("\n".join(headline_lines(metrics, options)))
    print("\n".join(control_lines(metrics["controls"])))


if __name__ == "__main__":
    exit_on_user_error(main)
