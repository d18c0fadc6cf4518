"""Screening of given transcripts (HW4P2, LibriSpeech) before they enter a store."""

from __future__ import annotations

from speechquant.skips import SkipLog
from speechquant.text import normalize

EMPTY_TRANSCRIPT = "empty transcript"
OUT_OF_VOCABULARY = "transcript has characters outside the vocabulary"


def screen_transcript(raw: str, utterance_id: str, skips: SkipLog) -> tuple[str | None, int]:
    """Return the normalized transcript (None if the utterance must be skipped) and chars dropped.

    Unspoken punctuation is dropped and counted; characters that are spoken but cannot
    be written in the vocabulary (digits, other scripts) make the label wrong, so the
    utterance is skipped instead.
    """
    normalized = normalize(raw)
    if normalized.out_of_vocabulary:
        skips.add(OUT_OF_VOCABULARY, utterance_id)
        return None, normalized.dropped
    if not normalized.text.strip():
        skips.add(EMPTY_TRANSCRIPT, utterance_id)
        return None, normalized.dropped
    return normalized.text, normalized.dropped
