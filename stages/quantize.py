"""DVC stage `quantize@<variant>`: one quantized variant of the exported model, with its guards."""

import argparse
import json
from pathlib import Path

from speechquant.calibration import utterance_inputs
from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_json
from speechquant.params import build, load_params, matrix_item, require_listed, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.store import Store
from speechquant.verify import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant", nargs="?", help="default: the one `dvc repro quantize@<variant>` runs")
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"), help="for qat_int8")
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics/quantize"))
    parser.add_argument("--auto-choice", type=Path, default=Path("models/auto_int8.json"), help="for auto_int8")
    args = parser.parse_args()
    options = build(QuantOptions, section(load_params(), "quant"), "quant")
    args.variant = require_listed(matrix_item(args.variant, "quantize"), options.variants, "quant.variants")
    chosen, qat_options = (), None
    if args.variant == "auto_int8":
        chosen = tuple(json.loads(args.auto_choice.read_text(encoding="utf-8"))["float_layers"])
    if args.variant == "qat_int8":
        from speechquant.qat import QatOptions

        qat_options = build(QatOptions, options.qat, "quant.qat")
    output = args.output_dir / f"{args.variant}.onnx"
    train, dev = Store(args.features / "train"), Store(args.features / "dev")
    keep_float, measured = quantize(
        args.variant, args.model, output, options, train, args.checkpoint, dev, qat_options=qat_options, chosen=chosen
    )
    check_inputs = utterance_inputs(dev, options.check_utterances, seed=0)
    metrics = {**report(args.variant, output, args.model, keep_float, check_inputs), **measured}
    write_json(args.metrics_dir / f"{args.variant}.json", metrics)
    print(
        f"{args.variant}: {metrics['size_mb']} MB ({metrics['smaller_than_fp32']}x smaller), "
        f"kernels {metrics['conv_kernels']}, float layers {metrics['float_layers']}, "
        f"max |log-prob diff| vs fp32 {metrics['max_abs_logprob_diff_vs_fp32']}"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
