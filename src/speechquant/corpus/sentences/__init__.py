"""The sentence lists the synthetic corpus speaks (gzipped, one cleaned sentence a line; sources
and licences in LICENSES.md), and which split each sentence belongs to.

The split is fixed by a hash of the sentence's text, so a dev or test sentence never occurs in
train, whatever the seed or the hours asked for; the corpus speaks from these pools, and the
``lm`` stage may read the whole training pool, of which 10 h speaks about a tenth.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

SENTENCE_DIR = Path(__file__).parent
TEXTS = ("wordnet", "web", "sotu")  # <name>.txt.gz that data.synth.texts may name
UNSEEN_TEXT = "jargon"  # dev_unseen_text only
HELD_OUT_PERCENT = {"dev": 5, "test": 5}


def check_texts(texts: tuple[str, ...]) -> None:
    """Refuse a ``data.synth.texts`` that names no list, an unknown one or the Jargon File, which is
    dev_unseen_text's alone: checked by the corpus's params and by the ``lm`` stage alike."""
    if not texts:
        raise ValueError(f"data.synth.texts must not be empty; valid: {list(TEXTS)}")
    for text in texts:
        if text == UNSEEN_TEXT:
            raise ValueError(f"data.synth.texts: {text!r} is reserved for dev_unseen_text; valid: {list(TEXTS)}")
        if text not in TEXTS:
            raise ValueError(f"data.synth.texts: no sentence list {text!r}; valid: {list(TEXTS)}")


def split_of(sentence: str) -> str:
    """The split a sentence belongs to, fixed by its text alone."""
    bucket = int.from_bytes(hashlib.sha256(sentence.encode()).digest()[:4], "little") % 100
    if bucket < HELD_OUT_PERCENT["dev"]:
        return "dev"
    if bucket < HELD_OUT_PERCENT["dev"] + HELD_OUT_PERCENT["test"]:
        return "test"
    return "train"


def _sentences(name: str) -> Iterator[str]:
    with gzip.open(SENTENCE_DIR / f"{name}.txt.gz", "rt", encoding="utf-8") as lines:
        yield from (line.strip() for line in lines if line.strip())


@cache
def sentence_pools(texts: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The sentences of ``texts``, grouped by split; ``dev_unseen_voice`` speaks dev's sentences and
    ``dev_unseen_text`` the Jargon File's, less any sentence ``texts`` also hold."""
    pools: dict[str, list[str]] = {split: [] for split in ("train", "dev", "test")}
    for name in texts:
        for sentence in _sentences(name):
            pools[split_of(sentence)].append(sentence)
    seen = {sentence for sentences in pools.values() for sentence in sentences}
    unseen_text = [sentence for sentence in _sentences(UNSEEN_TEXT) if sentence not in seen]
    return {
        **{split: tuple(sentences) for split, sentences in pools.items()},
        "dev_unseen_voice": tuple(pools["dev"]),
        "dev_unseen_text": tuple(unseen_text),
    }
