"""DVC stage `evaluate@<variant>`: CTC loss, CER, WER and average Levenshtein on dev and test."""

import argparse
from pathlib import Path

from speechquant.decode import Decoder, DecoderOptions
from speechquant.errors import exit_on_user_error
from speechquant.evaluate import EvalOptions, evaluate_split, result_rows
from speechquant.fileio import write_csv, write_json
from speechquant.params import build, load_params, section
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant")
    parser.add_argument("--models-dir", type=Path, default=Path("models/quantized"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--lm-dir", type=Path, default=Path("models/lm"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics/eval"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots/eval"))
    args = parser.parse_args()
    params = load_params()
    decoding = build(DecoderOptions, section(params, "decode"), "decode")
    options = build(EvalOptions, section(params, "eval"), "eval")
    decoder = Decoder(decoding, args.lm_dir / f"{decoding.lm}.arpa" if decoding.lm != "none" else None)
    model = args.models_dir / f"{args.variant}.onnx"
    metrics = {}
    for split in options.splits:
        split_metrics, results = evaluate_split(model, Store(args.features / split), decoder, options, split)
        metrics[split] = split_metrics
        write_csv(args.plots_dir / args.variant / f"{split}.csv", result_rows(results))
        m = split_metrics
        print(
            f"{args.variant} {split}: CER {m['cer']} WER {m['wer']} Levenshtein {m['levenshtein_mean']} "
            f"CTC loss {m['ctc_loss']} ({m['scored']}/{m['utterances']} scored; model {m['model_seconds']} s, "
            f"decode {m['decoded_per_second']} utt/s)"
        )
    write_json(args.metrics_dir / f"{args.variant}.json", metrics)


if __name__ == "__main__":
    exit_on_user_error(main)
