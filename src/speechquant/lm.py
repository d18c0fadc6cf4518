"""N-gram language models over characters or words, written as ARPA files for KenLM.

Smoothing is interpolated Witten-Bell: it needs no count-of-counts statistics, so it
stays sound on the small corpora this tool trains on (Kneser-Ney's discounts are
undefined when a count of counts is zero), and an interpolated model has an exact
ARPA backoff form: the backoff weight of a history ``h`` is ``T(h) / (c(h) + T(h))``,
where ``c(h)`` counts the n-grams continuing ``h`` and ``T(h)`` their distinct words.
KenLM reads the file directly; no ``lmplz`` is needed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from speechquant.fileio import write_text

LEVELS = ("char", "word")
SENTENCE_START = "<s>"
SENTENCE_END = "</s>"
UNKNOWN = "<unk>"
# The character LM's stand-in for a space, which ARPA cannot hold inside a word.
WORD_BOUNDARY = "|"
NEVER = -99.0  # ARPA's log10 probability of <s>, which is never predicted


def lm_units(text: str, level: str) -> list[str]:
    """The units a transcript is made of, as the LM sees them."""
    if level == "char":
        return [WORD_BOUNDARY if char == " " else char for char in text]
    if level == "word":
        return text.split()
    raise ValueError(f"LM level {level!r} is not one of {', '.join(LEVELS)}")


def count_ngrams(sentences: Iterable[list[str]], order: int) -> list[Counter[tuple[str, ...]]]:
    """Counts of every 1..order-gram in ``<s> units </s>``; index n-1 holds the n-grams."""
    counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order)]
    for units in sentences:
        padded = (SENTENCE_START, *units, SENTENCE_END)
        for n in range(1, order + 1):
            counts[n - 1].update(padded[i : i + n] for i in range(len(padded) - n + 1))
    counts[0].pop((SENTENCE_START,), None)  # a context only, never a predicted unit
    return counts


def witten_bell(counts: list[Counter[tuple[str, ...]]]) -> tuple[list[dict], list[dict]]:
    """log10 probabilities of every seen n-gram and log10 backoff weights of every history."""
    vocabulary = {gram[0] for gram in counts[0]} | {UNKNOWN}
    total, types = sum(counts[0].values()), len(counts[0])
    uniform = 1.0 / len(vocabulary)
    probabilities: list[dict[tuple[str, ...], float]] = [
        {(word,): (counts[0].get((word,), 0) + types * uniform) / (total + types) for word in vocabulary}
    ]
    backoffs: list[dict[tuple[str, ...], float]] = []
    for n in range(2, len(counts) + 1):
        continuation_count: Counter[tuple[str, ...]] = Counter()
        continuation_types: Counter[tuple[str, ...]] = Counter()
        for gram, count in counts[n - 1].items():
            continuation_count[gram[:-1]] += count
            continuation_types[gram[:-1]] += 1
        lower = probabilities[-1]
        probabilities.append(
            {
                gram: (count + continuation_types[gram[:-1]] * lower[gram[1:]])
                / (continuation_count[gram[:-1]] + continuation_types[gram[:-1]])
                for gram, count in counts[n - 1].items()
            }
        )
        backoffs.append(
            {
                history: continuation_types[history] / (continuation_count[history] + continuation_types[history])
                for history in continuation_count
            }
        )
    log10 = [{gram: math.log10(p) for gram, p in table.items()} for table in probabilities]
    log10_backoffs = [{gram: math.log10(w) for gram, w in table.items()} for table in backoffs]
    return log10, log10_backoffs


def arpa_text(sentences: Iterable[list[str]], order: int) -> tuple[str, dict[str, int]]:
    """The ARPA file of an ``order``-gram Witten-Bell model of ``sentences`` (sorted for stable
    bytes), and its n-gram count per order."""
    if order < 1:
        raise ValueError("LM order must be at least 1")
    log_probs, log_backoffs = witten_bell(count_ngrams(sentences, order))
    log_probs[0][(SENTENCE_START,)] = NEVER
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(table)}" for n, table in enumerate(log_probs, start=1)]
    for n, table in enumerate(log_probs, start=1):
        lines += ["", f"\\{n}-grams:"]
        weights = log_backoffs[n - 1] if n <= len(log_backoffs) else {}
        for gram in sorted(table):
            line = f"{table[gram]:.6f}\t{' '.join(gram)}"
            if gram in weights:
                line += f"\t{weights[gram]:.6f}"
            lines.append(line)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines), {f"{n}-grams": len(table) for n, table in enumerate(log_probs, start=1)}


def write_arpa(sentences: Iterable[str], level: str, order: int, path: Path) -> dict[str, int]:
    """Write the LM of ``sentences`` to ``path``; returns the n-gram count per order."""
    text, counts = arpa_text((lm_units(sentence, level) for sentence in sentences), order)
    write_text(path, text)
    return counts
