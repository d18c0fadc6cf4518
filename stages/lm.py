"""DVC stage `lm`: character and word n-gram language models of the training transcripts."""

import argparse
import time
from pathlib import Path

from speechquant.errors import UserError, exit_on_user_error
from speechquant.fileio import write_json
from speechquant.lm import LEVELS, write_arpa
from speechquant.params import load_params, section
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, default=Path("data/features/train"))
    parser.add_argument("--output-dir", type=Path, default=Path("models/lm"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/lm.json"))
    args = parser.parse_args()
    params = section(load_params(), "lm")
    transcripts = [u.text for u in Store(args.features).utterances if u.text is not None]
    metrics = {"transcripts": len(transcripts)}
    for level in LEVELS:
        order = params.get(f"{level}_order")
        if not isinstance(order, int) or order < 1:
            raise UserError(f"params lm.{level}_order must be a positive integer, not {order!r}")
        started = time.perf_counter()
        counts = write_arpa(transcripts, level, order, args.output_dir / f"{level}.arpa")
        metrics[level] = {"order": order, **counts}
        print(f"{level} {order}-gram LM: {counts} in {time.perf_counter() - started:.1f} s")
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    exit_on_user_error(main)
