"""DVC stages `evaluate@<variant>` and `evaluate_lm@<variant>-<lm>`: CTC loss, CER, WER and
average Levenshtein on every split in `eval.splits` with the `decode` params, or on dev and
test with them and an n-gram LM (the LMs know in-domain training text only, so the out-of-domain splits
are not decoded with them)."""

import argparse
from dataclasses import asdict
from pathlib import Path

from speechquant.decode import Decoder, DecoderOptions
from speechquant.errors import exit_on_user_error
from speechquant.evaluate import LM_LEVELS, EvalOptions, evaluate_split, result_rows, summary_line, what_to_evaluate
from speechquant.fileio import write_csv, write_json
from speechquant.openvino_session import NotRunnableHere
from speechquant.params import build, load_params, section
from speechquant.splits import OUT_OF_DOMAIN_SPLITS
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant", nargs="?", help="default: the one `dvc repro evaluate@<variant>` runs")
    parser.add_argument("--lm", choices=LM_LEVELS, help="decode with this LM (beam search)")
    parser.add_argument("--models-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--lm-dir", type=Path, default=Path("models/lm"))
    parser.add_argument("--metrics-dir", type=Path, help="default: metrics/eval, or metrics/eval_lm with --lm")
    parser.add_argument("--plots-dir", type=Path, help="default: plots/eval, or plots/eval_lm with --lm")
    args = parser.parse_args()
    params = load_params()
    args.variant, args.lm = what_to_evaluate(args.variant, args.lm, params)
    decode_params = section(params, "decode")
    name = args.variant
    if args.lm:
        decode_params = {**decode_params, "method": "beam", "lm": args.lm}
        name = f"{args.variant}-{args.lm}"
    folder = "eval_lm" if args.lm else "eval"
    metrics_dir, plots_dir = args.metrics_dir or Path("metrics", folder), args.plots_dir or Path("plots", folder)
    decoding = build(DecoderOptions, decode_params, "decode")
    options = build(EvalOptions, section(params, "eval"), "eval")
    decoder = Decoder(decoding, args.lm_dir / f"{decoding.lm}.arpa" if decoding.lm != "none" else None)
    model = args.models_dir / f"{args.variant}.onnx"
    metrics: dict = {"decoder": asdict(decoding)}
    splits = [split for split in options.splits if not (args.lm and split in OUT_OF_DOMAIN_SPLITS)]
    try:
        for split in splits:
            split_metrics, results = evaluate_split(model, Store(args.features / split), decoder, options, split)
            metrics[split] = split_metrics
            write_csv(plots_dir / name / f"{split}.csv", result_rows(results))
            print(summary_line(name, split, split_metrics))
    except NotRunnableHere as error:  # e.g. bf16 on a CPU without it: said, and the other variants go on
        metrics = {"decoder": metrics["decoder"], "skipped": str(error)}
        for split in splits:
            write_csv(plots_dir / name / f"{split}.csv", [])
        print(f"{name}: skipped, {error}")
    write_json(metrics_dir / f"{name}.json", metrics)


if __name__ == "__main__":
    exit_on_user_error(main)
