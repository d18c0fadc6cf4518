"""The features stage: corpus stores (audio or mel power) to log-mel stores.

Also the place where utterances unusable for training are screened out, since only
here are features and transcripts both at hand: non-finite values, and utterances too
short for their transcript under CTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from speechquant import ctc
from speechquant.audio import FeatureOptions, log_of_power, mel_power
from speechquant.errors import UserError
from speechquant.skips import SkipLog
from speechquant.store import Store, StoreWriter, Utterance
from speechquant.text import tokenize

NON_FINITE = "non-finite features (NaN or Inf)"
TOO_SHORT = "too short for its transcript under CTC"
EMPTY = "no frames"


def _log_mel_rows(corpus: Store, options: FeatureOptions) -> Iterator[tuple[Utterance, np.ndarray, bool]]:
    """(utterance, features, input was finite) for every utterance of a corpus store."""
    kind = corpus.meta.get("kind")
    if kind == "mel_power" and corpus.meta["row_shape"] != [options.n_mels]:
        raise UserError(
            f"{corpus.path} holds {corpus.meta['row_shape'][0]}-band mel power; set features.n_mels to match"
        )
    framing = (corpus.meta.get("window_ms", options.window_ms), corpus.meta.get("hop_ms", options.hop_ms))
    if kind == "mel_power" and framing != (options.window_ms, options.hop_ms):
        raise UserError(
            f"{corpus.path} holds mel power framed at {framing[0]:g} ms windows every {framing[1]:g} ms; "
            "set features.window_ms and features.hop_ms to match"
        )
    if kind not in ("audio", "mel_power"):
        raise UserError(f"{corpus.path} holds {kind!r} rows; expected audio or mel_power")
    for utterance, rows in corpus:
        if kind == "audio":
            yield utterance, log_of_power(mel_power(rows.astype(np.float32) / 32768.0, options)), True
        else:
            power = np.asarray(rows, dtype=np.float32)
            finite = bool(np.isfinite(power).all() and (power >= 0).all())
            yield utterance, log_of_power(power), finite


def build_split(corpus_path: Path, output: Path, options: FeatureOptions) -> dict[str, Any]:
    """Write the log-mel store for one split; returns its meta with the skips so far."""
    corpus = Store(corpus_path)
    skips = SkipLog(corpus.meta.get("skipped"))
    meta = {
        "kind": "log_mel",
        "source": corpus.meta.get("source"),
        "n_mels": options.n_mels,
        "window_ms": options.window_ms,
        "hop_ms": options.hop_ms,
        "dropped_chars": corpus.meta.get("dropped_chars", 0),
    }
    with StoreWriter(output, options.dtype, (options.n_mels,), meta) as writer:
        rows = tqdm(_log_mel_rows(corpus, options), total=len(corpus), desc=f"features {output.name}", leave=False)
        for utterance, features, finite in rows:
            if len(features) == 0:
                skips.add(EMPTY, utterance.id)
            elif not finite or not np.isfinite(features).all():
                skips.add(NON_FINITE, utterance.id)
            elif utterance.text is not None and ctc.output_frames(len(features)) < ctc.min_output_frames(
                tokenize(utterance.text)
            ):
                skips.add(TOO_SHORT, utterance.id)
            else:
                writer.append(utterance, features)
        writer.meta["skipped"] = skips.as_dict()
    return writer.meta


def split_summary(store: Store) -> dict[str, Any]:
    """The numbers ``metrics/data.json`` reports for one split."""
    frames = np.diff(store.offsets)
    texts = [u.text for u in store.utterances if u.text is not None]
    hours = float(frames.sum()) * store.meta["hop_ms"] / 1000 / 3600
    return {
        "utterances": len(store),
        "hours": round(hours, 4),
        "mean_frames": round(float(frames.mean()), 2) if len(frames) else 0.0,
        "mean_transcript_chars": round(float(np.mean([len(t) for t in texts])), 2) if texts else 0.0,
        "unscored_without_transcript": len(store) - len(texts),
        "dropped_chars": store.meta.get("dropped_chars", 0),
        "skipped": store.meta.get("skipped", {}),
    }


def histogram_rows(values_by_split: dict[str, np.ndarray], bin_width: int, column: str) -> list[dict[str, int]]:
    """A shared-bin histogram per split, one row per bin, for ``dvc plots``."""
    top = max((int(v.max()) for v in values_by_split.values() if len(v)), default=0)
    edges = np.arange(0, top + bin_width + 1, bin_width)
    counts = {split: np.histogram(values, bins=edges)[0] for split, values in values_by_split.items()}
    return [
        {column: int(edge), **{split: int(counts[split][i]) for split in values_by_split}}
        for i, edge in enumerate(edges[:-1])
    ]
