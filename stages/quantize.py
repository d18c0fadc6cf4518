"""DVC stages `convert@<variant>` (fp32, fp16), `quantize@<variant>` (dynamic and static int8) and
`quantize_auto` (auto_int8): one variant of the exported model, with its guards."""

import argparse
import json
from pathlib import Path

from speechquant.calibration import utterance_inputs
from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_json
from speechquant.params import build, load_params, matrix_item, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.store import Store
from speechquant.variants import recipe_for
from speechquant.verify import report, summary_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant", nargs="?", help="default: the one `dvc repro quantize@<variant>` runs")
    parser.add_argument(
        "--model", type=Path, default=Path("models/model.onnx"), help="the export: source and reference"
    )
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics/quantize"))
    parser.add_argument("--auto-choice", type=Path, default=Path("models/auto_int8.json"), help="for auto_int8")
    args = parser.parse_args()
    options = build(QuantOptions, section(load_params(), "quant"), "quant")
    variant = matrix_item(args.variant, "quantize", "convert")
    chosen = ()
    if variant == "auto_int8":
        chosen = tuple(json.loads(args.auto_choice.read_text(encoding="utf-8"))["float_layers"])
    output = args.output_dir / f"{variant}.onnx"
    source = recipe_for(variant).source  # the export, or the variant it is made from (pruned_int8: pruned_fp32)
    model = args.model if source == "export" else args.output_dir / f"{source}.onnx"
    train, dev = Store(args.features / "train"), Store(args.features / "dev")
    keep_float, measured = quantize(variant, model, output, options, train, chosen=chosen)
    check_inputs = utterance_inputs(dev, options.check_utterances, seed=0)
    metrics = {**report(variant, output, args.model, keep_float, check_inputs, options.weight_limit), **measured}
    write_json(args.metrics_dir / f"{variant}.json", metrics)
    print(summary_line(metrics))


if __name__ == "__main__":
    exit_on_user_error(main)
