"""Error rates from edit distances: CER over characters (rapidfuzz), WER over words (jiwer)."""

from __future__ import annotations

import jiwer
from rapidfuzz.distance import Levenshtein


def char_edits(reference: str, hypothesis: str) -> int:
    return Levenshtein.distance(reference, hypothesis)


def error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Total character edits over total reference length, so long utterances weigh more (as usual)."""
    edits = sum(char_edits(r, h) for r, h in zip(references, hypotheses, strict=True))
    return edits / max(sum(len(r) for r in references), 1)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """jiwer's corpus WER; jiwer refuses empty references, whose hypothesis words count as insertions."""
    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r.strip()]
    inserted = sum(len(h.split()) for r, h in zip(references, hypotheses, strict=True) if not r.strip())
    if not pairs:
        return float(inserted > 0)
    output = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    errors = output.substitutions + output.deletions + output.insertions + inserted
    return errors / sum(len(r.split()) for r, _ in pairs)
