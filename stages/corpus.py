"""DVC stage `corpus`: build the train/dev/test utterance stores of ``data.source``."""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from speechquant.corpus import build_corpus
from speechquant.errors import exit_on_user_error
from speechquant.fileio import write_json
from speechquant.params import load_params, section
from speechquant.skips import SkipLog
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("data/corpus"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/corpus.json"))
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="does not change the result")
    args = parser.parse_args()
    data_params = section(load_params(), "data")
    started = time.perf_counter()
    metas = build_corpus(data_params, args.output, args.workers)
    seconds = time.perf_counter() - started
    splits = {}
    for split, meta in metas.items():
        store = Store(args.output / split)
        skips = SkipLog(meta.get("skipped"))
        if skips.total:
            print(f"{split}:\n{skips.summary()}")
        rows = np.diff(store.offsets)
        splits[split] = {
            "utterances": len(store),
            "skipped": skips.total,
            "size_mb": round(sum(f.stat().st_size for f in store.path.iterdir()) / 1e6, 2),
        }
        if meta["kind"] == "audio":
            splits[split]["audio_hours"] = round(float(rows.sum()) / meta["sample_rate"] / 3600, 4)
    # The build time is printed, not written: the metrics must be the same for the same params.
    write_json(args.metrics, {"source": data_params["source"], **splits})
    counts = ", ".join(f"{split} {entry['utterances']} utt" for split, entry in splits.items())
    audio_hours = sum(entry.get("audio_hours", 0.0) for entry in splits.values())
    speed = f", {audio_hours * 3600 / seconds:.0f}x real time" if audio_hours else ""
    print(f"corpus built in {seconds:.1f} s with {args.workers} workers{speed}: {counts}")


if __name__ == "__main__":
    exit_on_user_error(main)
