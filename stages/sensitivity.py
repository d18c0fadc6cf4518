"""DVC stage `sensitivity`: each layer's effect on CER and KL when quantized alone or left out,
and the automatic choice of layers to keep in float for the `auto_int8` variant."""

import argparse
from pathlib import Path

from speechquant.compare import CompareOptions
from speechquant.decode import Decoder, DecoderOptions
from speechquant.errors import exit_on_user_error
from speechquant.evaluate import EvalOptions
from speechquant.fileio import write_csv, write_json
from speechquant.params import build, load_params, section
from speechquant.quantize import QuantOptions
from speechquant.sensitivity import AutoOptions, run_sensitivity, summary_lines
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--lm-dir", type=Path, default=Path("models/lm"))
    parser.add_argument("--choice", type=Path, default=Path("models/auto_int8.json"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/sensitivity.json"))
    parser.add_argument("--plot", type=Path, default=Path("plots/sensitivity/layers.csv"))
    args = parser.parse_args()
    params = load_params()
    options = build(QuantOptions, section(params, "quant"), "quant")
    auto = build(AutoOptions, options.auto, "quant.auto")
    decoding = build(DecoderOptions, section(params, "decode"), "decode")
    decoder = Decoder(decoding, args.lm_dir / f"{decoding.lm}.arpa" if decoding.lm != "none" else None)
    workers = build(EvalOptions, section(params, "eval"), "eval").worker_count()
    bootstrap = build(CompareOptions, section(params, "compare"), "compare")
    train, dev = Store(args.features / "train"), Store(args.features / "dev")
    choice, rows, metrics = run_sensitivity(args.model, train, dev, options, auto, decoder, bootstrap, workers)
    write_json(args.choice, choice)
    write_csv(args.plot, rows)
    write_json(args.metrics, metrics)
    print("\n".join(summary_lines(metrics)))


if __name__ == "__main__":
    exit_on_user_error(main)
