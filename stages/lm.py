"""DVC stage `lm`: character and word n-gram language models of the training text: with `lm.text: pool`
and the synthetic corpus, every sentence of its training pool (10 h speaks about a tenth: text costs
nothing to add, audio does); otherwise, and for the other sources, which have no unspoken text, the
training transcripts."""

import argparse
import time
from pathlib import Path

from speechquant.corpus.sentences import check_texts, sentence_pools
from speechquant.errors import UserError, exit_on_user_error
from speechquant.fileio import write_json
from speechquant.lm import LEVELS, write_arpa
from speechquant.params import load_params, section
from speechquant.store import Store


def training_text(choice: object, params: dict, transcripts: list[str]) -> tuple[list[str], str]:
    """The sentences the LMs learn from, and which text they are (``pool`` or ``transcripts``)."""
    if choice not in ("pool", "transcripts"):
        raise UserError(f"params lm.text is {choice!r}; valid: pool, transcripts")
    if choice == "transcripts" or section(params, "data")["source"] != "synth":
        return transcripts, "transcripts"
    texts = tuple(section(params, "data.synth")["texts"])
    try:
        check_texts(texts)
    except ValueError as error:
        raise UserError(f"params {error}") from None
    return list(sentence_pools(texts)["train"]), "pool"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, default=Path("data/features/train"))
    parser.add_argument("--output-dir", type=Path, default=Path("models/lm"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/lm.json"))
    args = parser.parse_args()
    all_params = load_params()
    params = section(all_params, "lm")
    transcripts = [u.text for u in Store(args.features).utterances if u.text is not None]
    sentences, text = training_text(params.get("text"), all_params, transcripts)
    metrics = {"text": text, "sentences": len(sentences), "transcripts": len(transcripts)}
    for level in LEVELS:
        order = params.get(f"{level}_order")
        if not isinstance(order, int) or order < 1:
            raise UserError(f"params lm.{level}_order must be a positive integer, not {order!r}")
        started = time.perf_counter()
        counts = write_arpa(sentences, level, order, args.output_dir / f"{level}.arpa")
        metrics[level] = {"order": order, **counts}
        print(f"{level} {order}-gram LM: {counts} in {time.perf_counter() - started:.1f} s")
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    exit_on_user_error(main)
