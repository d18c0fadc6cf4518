"""The study's letter vocabulary and transcript normalization.

Token ids follow the original study's letter list so that models and numbers stay
comparable with it: blank ``<`` = 0, ``a``-``z`` = 1-26, ``-`` 27, ``'`` 28, ``.`` 29,
``_`` 30, ``+`` 31, space 32, ``>`` 33, and one spare id (34) for 35 outputs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

BLANK = "<"
LETTERS = [BLANK, *"abcdefghijklmnopqrstuvwxyz", "-", "'", ".", "_", "+", " ", ">"]
BLANK_ID = 0
NUM_CLASSES = len(LETTERS) + 1  # one spare output, as in the study
CHAR_TO_ID = {char: index for index, char in enumerate(LETTERS)}

# Characters a transcript may hold: everything but the blank and the end marker.
TRANSCRIPT_CHARS = frozenset(LETTERS) - {BLANK, ">"}

# Punctuation that is not spoken: dropping it leaves the words, and so the audio, intact.
# Typographic quotes, dashes and the ellipsis are written as escapes to keep them unambiguous.
UNSPOKEN_PUNCTUATION = frozenset(',;:!?"()[]{}`/\\*\u00ab\u00bb\u201c\u201d\u2018\u2026\u2013\u2014')
# Typographic apostrophes (right single quote, modifier letter) are the letter ``'``: isn't.
APOSTROPHES = frozenset("\u2019\u02bc")
_WHITESPACE = re.compile(r"\s+")


def tokenize(text: str) -> list[int]:
    """Map a normalized transcript to token ids; raise on characters it may not hold."""
    unknown = sorted(set(text) - TRANSCRIPT_CHARS)
    if unknown:
        raise ValueError(f"characters {''.join(unknown)!r} cannot appear in a transcript")
    return [CHAR_TO_ID[char] for char in text]


def detokenize(ids: list[int]) -> str:
    """Map token ids back to text, skipping blanks and the spare id."""
    return "".join(LETTERS[i] for i in ids if 0 < i < len(LETTERS))


@dataclass(frozen=True)
class Normalized:
    """A normalized transcript and what normalization had to do to it.

    ``out_of_vocabulary`` holds characters that change what is said (digits, other
    scripts, symbols): the transcript no longer matches the audio, so callers skip it.
    """

    text: str
    dropped: int
    out_of_vocabulary: str


def normalize(raw: str) -> Normalized:
    """Lower-case, strip accents, drop unspoken punctuation, collapse whitespace."""
    decomposed = unicodedata.normalize("NFKD", raw)
    kept: list[str] = []
    dropped = 0
    unknown: list[str] = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue
        lower = "'" if char in APOSTROPHES else char.lower()
        if lower in TRANSCRIPT_CHARS:
            kept.append(lower)
        elif char.isspace():
            kept.append(" ")
        elif char in UNSPOKEN_PUNCTUATION:
            kept.append(" ")
            dropped += 1
        else:
            unknown.append(char)
    text = _WHITESPACE.sub(" ", "".join(kept)).strip()
    return Normalized(text=text, dropped=dropped, out_of_vocabulary="".join(sorted(set(unknown))))
