"""What decoding in ``eval.workers`` processes saves: the evaluate stage's decode and CTC loss, one process against two.

    python tools/decode_processes.py [--model models/quantized/fp32.onnx] [--splits dev test]
                                     [--output reports/decode_processes.json]

Each split is evaluated four times, alternating one process and two (``evaluate.evaluate_split``
with ``eval.workers`` 1 and 2, the beam-20 decoder of the ``decode`` params), so that a noisy
neighbour slows both alike; the report holds each run's ``decode_seconds`` (decoding and the
CTC loss; the model's own time is apart) and whether every run gave the same hypotheses and
losses, bit for bit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechquant.decode import Decoder, DecoderOptions
from speechquant.evaluate import EvalOptions, evaluate_split
from speechquant.hardware import hardware_stamp
from speechquant.lock import file_md5
from speechquant.params import build, load_params, section
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/quantized/fp32.onnx"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--splits", nargs="+", default=["dev", "test"])
    parser.add_argument("--output", type=Path, default=Path("reports/decode_processes.json"))
    args = parser.parse_args()
    decoding = build(DecoderOptions, section(load_params(), "decode"), "decode")
    if decoding.lm != "none":
        raise SystemExit("error: decode.lm is set; this tool decodes without an LM")
    decoder = Decoder(decoding, None)
    splits = {}
    for split in args.splits:
        store = Store(args.features / split)
        seconds: dict[int, list[float]] = {1: [], 2: []}
        outcomes = []
        for workers in (1, 2, 1, 2):
            metrics, results = evaluate_split(args.model, store, decoder, EvalOptions(workers=workers))
            seconds[workers].append(metrics["decode_seconds"])
            outcomes.append([(result.hypothesis, result.ctc_loss) for result in results])
        splits[split] = {
            "utterances": len(store),
            "one_process_seconds": seconds[1],
            "two_processes_seconds": seconds[2],
            "speedup": round(sum(seconds[1]) / sum(seconds[2]), 2),
            "identical": all(outcome == outcomes[0] for outcome in outcomes),
        }
        print(split, json.dumps(splits[split]), flush=True)
    report = {
        "command": f"python tools/decode_processes.py --model {args.model} --splits {' '.join(args.splits)}",
        "model_md5": file_md5(args.model),
        "machine": hardware_stamp(),
        "splits": splits,
    }
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
