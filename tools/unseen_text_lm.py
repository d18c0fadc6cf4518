"""Does spelling knowledge from text alone close dev_unseen_text's gap? Character LMs, measured.

    python tools/unseen_text_lm.py [--variant fp32] [--output reports/unseen_text_lm.json]

``tools/unseen_text_vocabulary.py`` finds dev_unseen_text's extra CER in the words training
never spoke. Text is cheap where audio is not: the corpus speaks about a tenth of its
training sentence pool in 10 h, and a character n-gram LM can learn spelling from all of
it. So the variant's outputs are beam-decoded (the ``decode`` params, beam 20) three ways on
dev, test and dev_unseen_text: without an LM (the pipeline's evaluation), with a character
LM of the spoken training transcripts (what the ``lm`` stage learnt before ``lm.text: pool``)
and with one of the whole training pool (synth's ``train`` sentences: never a dev, test or
Jargon File sentence; the ``lm`` stage's default), both of ``lm.char_order``. About 3
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from speechquant.corpus import synth
from speechquant.corpus.sentences import sentence_pools
from speechquant.decode import Decoder, DecoderOptions
from speechquant.evaluate import EvalOptions, evaluate_split
from speechquant.hardware import hardware_stamp
from speechquant.lm import write_arpa
from speechquant.params import build, load_params, section
from speechquant.store import Store

SPLITS = ("dev", "test", "dev_unseen_text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="fp32", help="models/quantized/<variant>.onnx")
    parser.add_argument("--output", type=Path, default=Path("reports/unseen_text_lm.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    params = load_params()
    options = build(synth.SynthOptions, section(params, "data.synth"), "data.synth")
    evaluation = build(EvalOptions, section(params, "eval"), "eval")
    order = section(params, "lm")["char_order"]
    pool = sentence_pools(options.texts)["train"]
    transcripts = [utterance.text or "" for utterance in Store("data/features/train").utterances]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        lms = {"none": None, "transcripts": Path(scratch, "transcripts.arpa"), "pool": Path(scratch, "pool.arpa")}
        write_arpa(transcripts, "char", order, lms["transcripts"])
        write_arpa(pool, "char", order, lms["pool"])
        for lm_name, lm_path in lms.items():
            decoding = {**section(params, "decode"), "method": "beam", "lm": "none" if lm_path is None else "char"}
            decoder = Decoder(build(DecoderOptions, decoding, "decode"), lm_path)
            cers = {}
            for split in SPLITS:
                model = Path("models/quantized") / f"{args.variant}.onnx"
                cers[split] = evaluate_split(model, Store(Path("data/features") / split), decoder, evaluation)[0]["cer"]
            cers["unseen_text_of_dev"] = round(cers["dev_unseen_text"] / cers["dev"], 3)
            results[lm_name] = cers
            print(lm_name, cers, flush=True)
    report = {
        "command": f"python tools/unseen_text_lm.py --variant {args.variant}",
        "variant": args.variant,
        "char_order": order,
        "transcripts_spoken": len(transcripts),
        "pool_sentences": len(pool),
        "machine": hardware_stamp(),
        "seconds": round(time.perf_counter() - started, 1),
        "lms": results,
    }
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
