"""Error rates from edit distances: CER over characters, WER over words."""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein


def char_edits(reference: str, hypothesis: str) -> int:
    return Levenshtein.distance(reference, hypothesis)


def word_edits(reference: str, hypothesis: str) -> int:
    return Levenshtein.distance(reference.split(), hypothesis.split())


def error_rate(references: list[str], hypotheses: list[str], unit: str = "char") -> float:
    """Total edits over total reference length, so long utterances weigh more (as usual)."""
    if unit == "char":
        edits = sum(char_edits(r, h) for r, h in zip(references, hypotheses, strict=True))
        total = sum(len(r) for r in references)
    else:
        edits = sum(word_edits(r, h) for r, h in zip(references, hypotheses, strict=True))
        total = sum(len(r.split()) for r in references)
    return edits / max(total, 1)
