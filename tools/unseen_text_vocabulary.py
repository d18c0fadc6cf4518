"""Why dev_unseen_text costs more than dev: the words the model heard in training, and those it never did.

    python tools/unseen_text_vocabulary.py [--variant fp32] [--output reports/unseen_text_vocabulary.json]

A character CTC model learns the spelling of the words it hears; a word it never heard it
can only spell by ear, and English spelling is not phonetic. So a split's CER is a mix:
each reference word, with the space after it, owns its characters and every edit the
character alignment puts on them, and the words fall into three classes by how often
training spoke them (``familiar``: at least ``FAMILIAR`` times, ``rare``: less, ``unheard``:
never). CER is then exactly the classes' shares of characters times their CERs, and two
questions have numbers: does the model hear the Jargon File's familiar words worse than
dev's (acoustics, sentence style), and how much of the gap is only that the Jargon File
has more unheard words (its vocabulary)? ``mix_adjusted_of_dev`` answers the second: the
unseen-text class CERs weighted by dev's shares, over dev's CER.

Could the corpus choose sentences to hear more of those words within the same hours? The
``coverage`` section compares the words of dev_unseen_text that training hears, as the
corpus draws its sentences (a seeded shuffle of the pool) and as a greedy choice that takes
first every sentence bringing a word not yet heard, at the same number of characters.

Reads the evaluation's per-utterance CSVs (``plots/eval/<variant>/<split>.csv``) and the
training transcripts (``data/features/train``); a few seconds, no model run.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

from speechquant.corpus import synth
from speechquant.hardware import hardware_stamp
from speechquant.params import build, load_params, section
from speechquant.store import Store

SPLITS = ("dev", "test", "dev_unseen_text")
CLASSES = ("familiar", "rare", "unheard")
FAMILIAR = 5  # times heard in training


def word_class(word: str, heard: Counter[str]) -> str:
    count = heard[word]
    return "familiar" if count >= FAMILIAR else "rare" if count else "unheard"


def edits_per_word(reference: str, hypothesis: str) -> list[tuple[str, int, int]]:
    """Per reference word: the word, the characters it owns (itself and the space after it) and the edits
    of an optimal character alignment that fall on them; an insertion after the last word is the last
    word's. The characters and edits sum to ``len(reference)`` and the edit distance."""
    words = reference.split(" ")
    owner = np.repeat(np.arange(len(words)), [len(word) + 1 for word in words])[: len(reference)]
    edits = np.zeros(len(words), dtype=int)
    for operation in Levenshtein.editops(reference, hypothesis):
        edits[owner[min(operation.src_pos, len(reference) - 1)]] += 1
    owned = np.bincount(owner, minlength=len(words))
    return [(word, int(chars), int(count)) for word, chars, count in zip(words, owned, edits, strict=True)]


def by_class(rows: Iterable[dict[str, str]], heard: Counter[str]) -> dict[str, dict[str, float]]:
    """Per word class: its share of the split's reference characters and its own CER; and the split's CER."""
    chars, edits = Counter[str](), Counter[str]()
    for row in rows:
        if not row["reference"]:
            continue
        for word, owned, count in edits_per_word(row["reference"], row["hypothesis"]):
            name = word_class(word, heard)
            chars[name] += owned
            edits[name] += count
    total = sum(chars.values())
    result = {
        name: {"char_share": chars[name] / total, "cer": edits[name] / chars[name] if chars[name] else 0.0}
        for name in CLASSES
    }
    return {**result, "all": {"char_share": 1.0, "cer": sum(edits.values()) / total}}


def mixed_cer(shares_of: dict[str, dict[str, float]], cers_of: dict[str, dict[str, float]]) -> float:
    return sum(shares_of[name]["char_share"] * cers_of[name]["cer"] for name in CLASSES)


def coverage(options: synth.SynthOptions, heard_texts: list[str], targets: list[str]) -> dict[str, object]:
    """Shares of ``targets``' words that training hears at least once and ``FAMILIAR`` times: as the corpus
    chose its sentences, and as a greedy new-word-first choice of the same pool with as many characters."""
    pool = synth.spoken_order(options, "train")
    seen: Counter[str] = Counter()
    first, rest = [], []
    for sentence in pool:
        words = sentence.split()
        if any(seen[word] == 0 for word in words):
            first.append(sentence)
            seen.update(words)
        else:
            rest.append(sentence)
    budget, chosen, chars = sum(len(text) for text in heard_texts), [], 0
    for text in first + rest:
        if chars >= budget:
            break
        chosen.append(text)
        chars += len(text)
    target_words = [word for text in targets for word in text.split()]

    def covered(texts: list[str]) -> dict[str, float]:
        heard = Counter(word for text in texts for word in text.split())
        return {
            "sentences": len(texts),
            "distinct_words": len(heard),
            "heard_once": round(sum(heard[word] > 0 for word in target_words) / len(target_words), 4),
            "familiar": round(sum(heard[word] >= FAMILIAR for word in target_words) / len(target_words), 4),
        }

    return {
        "pool_sentences": len(pool),
        "as_drawn": covered(heard_texts),
        "new_words_first": covered(chosen),
        "whole_pool": covered(list(pool)),
    }


def read_rows(variant: str, split: str) -> list[dict[str, str]]:
    with open(Path("plots/eval") / variant / f"{split}.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="fp32", help="whose evaluation CSVs (plots/eval/<variant>)")
    parser.add_argument("--output", type=Path, default=Path("reports/unseen_text_vocabulary.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    options = build(synth.SynthOptions, section(load_params(), "data.synth"), "data.synth")
    train_texts = [utterance.text or "" for utterance in Store("data/features/train").utterances]
    heard = Counter(word for text in train_texts for word in text.split())
    rows = {split: read_rows(args.variant, split) for split in SPLITS}
    splits = {split: by_class(rows[split], heard) for split in SPLITS}
    dev, unseen = splits["dev"], splits["dev_unseen_text"]
    report = {
        "command": f"python tools/unseen_text_vocabulary.py --variant {args.variant}",
        "variant": args.variant,
        "familiar_at": FAMILIAR,
        "machine": hardware_stamp(),
        "splits": {
            split: {name: {key: round(value, 4) for key, value in entry.items()} for name, entry in classes.items()}
            for split, classes in splits.items()
        },
        "unseen_text_of_dev": round(unseen["all"]["cer"] / dev["all"]["cer"], 3),
        "mix_adjusted_of_dev": round(mixed_cer(dev, unseen) / dev["all"]["cer"], 3),
        "coverage": coverage(options, train_texts, [row["reference"] for row in rows["dev_unseen_text"]]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for split, classes in report["splits"].items():
        shown = "  ".join(f"{name} {entry['char_share']:.3f} x {entry['cer']:.4f}" for name, entry in classes.items())
        print(f"{split:16s} {shown}")
    ratio, adjusted = report["unseen_text_of_dev"], report["mix_adjusted_of_dev"]
    print(f"unseen text / dev {ratio:.2f}, with dev's word mix {adjusted:.2f}")
    print(json.dumps(report["coverage"], indent=1))
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
