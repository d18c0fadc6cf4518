"""DVC stage `features`: log-mel stores from the corpus, plus data metrics and histograms."""

import argparse
from pathlib import Path

import numpy as np

from speechquant.errors import exit_on_user_error
from speechquant.features import FeatureOptions, build_split, histogram_rows, split_summary
from speechquant.fileio import atomic_path, write_csv, write_json
from speechquant.params import build, load_params, section
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store

FRAMES_BIN = 50  # 0.5 s
CHARS_BIN = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--output", type=Path, default=Path("data/features"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/data.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots/data"))
    args = parser.parse_args()
    options = build(FeatureOptions, section(load_params(), "features"), "features")
    with atomic_path(args.output) as temporary:
        temporary.mkdir()
        for split in ALL_SPLITS:
            build_split(args.corpus / split, temporary / split, options)
    stores = {split: Store(args.output / split) for split in ALL_SPLITS}
    write_json(args.metrics, {split: split_summary(store) for split, store in stores.items()})
    frames = {split: np.diff(store.offsets) for split, store in stores.items()}
    chars = {split: np.array([len(u.text) for u in s.utterances if u.text is not None]) for split, s in stores.items()}
    write_csv(args.plots / "utterance_frames.csv", histogram_rows(frames, FRAMES_BIN, "frames"))
    write_csv(args.plots / "transcript_chars.csv", histogram_rows(chars, CHARS_BIN, "chars"))
    for split, store in stores.items():
        print(f"{split}: {len(store)} utterances, {split_summary(store)['hours']} h")


if __name__ == "__main__":
    exit_on_user_error(main)
