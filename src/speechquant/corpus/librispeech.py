"""A local directory in LibriSpeech layout: ``<subset>/<speaker>/<chapter>/*.flac`` + ``*.trans.txt``.

Each ``*.trans.txt`` line is ``<utterance-id> <TRANSCRIPT>``, and the audio is
``<utterance-id>.flac`` beside it. Any sample rate and channel count is accepted:
audio is mixed to mono and resampled to 16 kHz with soxr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from speechquant.audio import SAMPLE_RATE, load_audio
from speechquant.corpus.transcripts import screen_transcript
from speechquant.errors import UserError
from speechquant.skips import SkipLog
from speechquant.store import SPLITS, StoreWriter, Utterance

UNREADABLE_AUDIO = "unreadable audio"
EMPTY_AUDIO = "empty audio"


@dataclass(frozen=True)
class LibrispeechOptions:
    """The ``data.librispeech`` params: the root folder and the subsets that make each split."""

    root: str = "data/LibriSpeech"
    subsets: dict[str, list[str]] = field(
        default_factory=lambda: {"train": ["train-clean-100"], "dev": ["dev-clean"], "test": ["test-clean"]}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.subsets, dict):
            raise ValueError("subsets must map split names to lists of subset folders")
        unknown = set(self.subsets) - set(SPLITS)
        if unknown:
            raise ValueError(f"subsets: unknown splits {sorted(unknown)}; valid: {list(SPLITS)}")
        for split, names in self.subsets.items():
            if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
                raise ValueError(f"subsets.{split} must be a list of folder names, e.g. [dev-clean]")


def transcript_lines(subset_dir: Path) -> list[tuple[str, str, Path]]:
    """(id, raw transcript, audio path) for every line of every ``*.trans.txt``, sorted by id."""
    entries = []
    for transcript_file in subset_dir.rglob("*.trans.txt"):
        for line in transcript_file.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            utterance_id, _, text = line.strip().partition(" ")
            entries.append((utterance_id, text, transcript_file.parent / f"{utterance_id}.flac"))
    return sorted(entries)


def build_split(options: LibrispeechOptions, split: str, output: Path) -> dict[str, Any]:
    """Read a split's subsets into a 16 kHz int16 audio store at ``output``."""
    root = Path(options.root)
    if not root.is_dir():
        raise UserError(f"data.librispeech.root {root} is not a directory")
    subsets = options.subsets.get(split, ())
    entries = []
    for subset in subsets:
        subset_dir = root / subset
        if not subset_dir.is_dir():
            available = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise UserError(f"subset {subset!r} for split {split} not found in {root}; found: {available}")
        entries.extend(transcript_lines(subset_dir))
    if subsets and not entries:
        raise UserError(f"no *.trans.txt lines under {root} for subsets {list(subsets)}")
    skips = SkipLog()
    dropped = 0
    meta = {"kind": "audio", "sample_rate": SAMPLE_RATE, "source": "librispeech"}
    with StoreWriter(output, np.int16, (), meta) as writer:
        for utterance_id, raw_text, audio_path in tqdm(entries, desc=f"librispeech {split}", unit="utt", leave=False):
            text, dropped_here = screen_transcript(raw_text, utterance_id, skips)
            dropped += dropped_here
            if text is None:
                continue
            try:
                samples = load_audio(audio_path)
            except Exception:  # soundfile raises several types for missing or corrupt files
                skips.add(UNREADABLE_AUDIO, utterance_id)
                continue
            if samples.size == 0:
                skips.add(EMPTY_AUDIO, utterance_id)
                continue
            pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
            writer.append(Utterance(utterance_id, text, 0, {"path": str(audio_path.relative_to(root))}), pcm)
        writer.meta.update(skipped=skips.as_dict(), dropped_chars=dropped)
    if entries and len(writer) == 0:
        raise UserError(f"every utterance of split {split} was skipped:\n{skips.summary()}")
    return writer.meta
