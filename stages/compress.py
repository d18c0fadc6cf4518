"""DVC stage `compress`: pruned_fp32 (structured pruning of the trained model, fine-tuned with
distillation) and fp32_finetuned (the unpruned model fine-tuned alike: the fair control)."""

import argparse
from pathlib import Path

from speechquant.batching import UtteranceSet
from speechquant.calibration import utterance_inputs
from speechquant.compress import CompressOptions, compress
from speechquant.errors import exit_on_user_error
from speechquant.export import export
from speechquant.fileio import write_json
from speechquant.model import load_model
from speechquant.params import build, load_params, section
from speechquant.runtime import load_onnx
from speechquant.store import Store
from speechquant.verify import report, summary_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"), help="its card and the reference")
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics/quantize"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/compress.json"))
    args = parser.parse_args()
    params = load_params()
    options = build(CompressOptions, section(params, "compress"), "compress")
    card = {prop.key: prop.value for prop in load_onnx(args.model).metadata_props}
    train, dev = Store(args.features / "train"), Store(args.features / "dev")
    pruned, control, measured = compress(load_model(args.checkpoint), UtteranceSet(train), UtteranceSet(dev), options)
    check_inputs = utterance_inputs(dev, section(params, "quant")["check_utterances"], seed=0)
    for variant, model in (("pruned_fp32", pruned), ("fp32_finetuned", control)):
        output = args.output_dir / f"{variant}.onnx"
        export(model, output, {**card, "parameters": str(measured[variant]["parameters"])})
        # The clock stays in metrics/compress.json: metrics/quantize is a dependency of the benchmark,
        # which a timing there would re-run whenever compress re-runs with the models unchanged.
        untimed = {key: value for key, value in measured[variant].items() if key != "fine_tune_seconds"}
        metrics = {**report(variant, output, args.model, [], check_inputs), **untimed}
        write_json(args.metrics_dir / f"{variant}.json", metrics)
        print(summary_line(metrics))
    write_json(args.metrics, measured)


if __name__ == "__main__":
    exit_on_user_error(main)
