"""DVC stage `quantize_qat`: qat_int8, the trained checkpoint fine-tuned with fake quantization."""

import argparse
from pathlib import Path

from speechquant.calibration import utterance_inputs
from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_json
from speechquant.params import build, load_params, section
from speechquant.qat import QatOptions, make_qat_variant
from speechquant.quantize import QuantOptions
from speechquant.store import Store
from speechquant.verify import report, summary_line

VARIANT = "qat_int8"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"), help="its card and the reference")
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics/quantize"))
    args = parser.parse_args()
    options = build(QuantOptions, section(load_params(), "quant"), "quant")
    qat_options = build(QatOptions, options.qat, "quant.qat")
    output = args.output_dir / f"{VARIANT}.onnx"
    train, dev = Store(args.features / "train"), Store(args.features / "dev")
    keep_float, measured = make_qat_variant(args.checkpoint, args.model, output, options, qat_options, train, dev)
    check_inputs = utterance_inputs(dev, options.check_utterances, seed=0)
    metrics = {**report(VARIANT, output, args.model, keep_float, check_inputs, options.weight_limit), **measured}
    write_json(args.metrics_dir / f"{VARIANT}.json", metrics)
    print(summary_line(metrics))


if __name__ == "__main__":
    exit_on_user_error(main)
