"""Turning model outputs into text: greedy best path, or flashlight-text's CTC beam search.

The beam search runs without a language model (the study's setting), or with one of the
project's own ARPA n-gram models through flashlight's KenLM: a character model scores
every letter in the lexicon-free search; a word model needs the lexicon search, which
only spells words the model knows (its unigrams).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

from speechquant.ctc import collapse
from speechquant.errors import UserError
from speechquant.lm import SENTENCE_END, SENTENCE_START, UNKNOWN, WORD_BOUNDARY
from speechquant.params import Checked, limits
from speechquant.text import BLANK_ID, CHAR_TO_ID, LETTERS, NUM_CLASSES, detokenize, tokenize

METHODS = ("greedy", "beam")
LMS = ("none", "char", "word")
MAX_BEAM = 1000  # wider beams take minutes per file and decode no better


@dataclass(frozen=True)
class DecoderOptions(Checked):
    """How to decode; the defaults are the study's lexicon-free beam of 20."""

    method: str = field(default="beam", metadata=limits(choices=METHODS))
    beam_size: int = field(default=20, metadata=limits(1, MAX_BEAM))
    beam_size_token: int = field(default=35, metadata=limits(1, NUM_CLASSES))  # tokens tried per frame; all
    beam_threshold: float = field(default=25.0, metadata=limits(above=0))  # drop hypotheses this far below the best
    lm: str = field(default="none", metadata=limits(choices=LMS))
    lm_weight: float = 0.6  # weight of the LM's log10 score against the acoustic log-probs
    word_score: float = 0.5  # added per word (word LM) or per space (char LM): insertion bonus

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lm != "none" and self.method != "beam":
            raise ValueError("a language model needs method: beam")


class Decoder:
    """Decodes one utterance's log-probs (frames, classes) to text with the chosen method.

    ``lm_path`` is the ARPA file of the chosen LM level; it is read on the first beam decode.
    """

    def __init__(self, options: DecoderOptions, lm_path: Path | None = None):
        if options.lm != "none" and lm_path is None:
            raise ValueError(f"lm: {options.lm} needs the path of its ARPA file")
        self.options = options
        self.lm_path = lm_path
        self.words: list[str] = []

    @cached_property
    def _new_search(self) -> Callable[[], Any]:
        """A maker of fresh flashlight searches, sharing the LM and the lexicon.

        A flashlight decoder object is not reset between ``decode`` calls: reused, it can
        break exact score ties differently depending on what it decoded before, so the
        same log-probs could decode differently in another order. One per utterance.
        """
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            LexiconFreeDecoder,
            SmearingMode,
            Trie,
            ZeroLM,
        )

        options = self.options
        space = CHAR_TO_ID[" "]
        if options.lm == "none":
            settings, lm = self._lexicon_free_options(0.0, 0.0), ZeroLM()
            return lambda: LexiconFreeDecoder(settings, lm, space, BLANK_ID, [])
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        if not self.lm_path or not Path(self.lm_path).is_file():
            raise UserError(f"language model {self.lm_path} not found: run `dvc repro lm`")
        if options.lm == "char":
            # Every output class needs an entry; the spare class and the markers are unknown to the LM.
            lm_tokens = [WORD_BOUNDARY if char == " " else char for char in LETTERS] + ["<spare>"]
            lm = KenLM(str(self.lm_path), Dictionary(lm_tokens))
            settings = self._lexicon_free_options(options.lm_weight, options.word_score)
            return lambda: LexiconFreeDecoder(settings, lm, space, BLANK_ID, [])
        spelled = arpa_unigrams(Path(self.lm_path))
        self.words = [*spelled, UNKNOWN]
        lm = KenLM(str(self.lm_path), Dictionary(self.words))
        trie = Trie(NUM_CLASSES, space)
        start = lm.start(False)
        for index, word in enumerate(spelled):
            _, score = lm.score(start, index)
            trie.insert(tokenize(word), index, score)
        trie.smear(SmearingMode.MAX)
        settings = LexiconDecoderOptions(
            beam_size=options.beam_size,
            beam_size_token=options.beam_size_token,
            beam_threshold=options.beam_threshold,
            lm_weight=options.lm_weight,
            word_score=options.word_score,
            unk_score=float("-inf"),
            sil_score=0.0,
            log_add=True,
            criterion_type=CriterionType.CTC,
        )
        return lambda: LexiconDecoder(settings, trie, lm, space, BLANK_ID, len(spelled), [], False)

    def _lexicon_free_options(self, lm_weight: float, sil_score: float):
        from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoderOptions

        return LexiconFreeDecoderOptions(
            beam_size=self.options.beam_size,
            beam_size_token=self.options.beam_size_token,
            beam_threshold=self.options.beam_threshold,
            lm_weight=lm_weight,
            sil_score=sil_score,
            log_add=True,  # merged paths add up, as CTC prefix beam search requires
            criterion_type=CriterionType.CTC,
        )

    def __call__(self, log_probs: np.ndarray, length: int) -> str:
        stream = self.stream()
        stream.feed(log_probs[:length])
        return stream.finish()

    def stream(self) -> Stream:
        """A decode of one utterance whose log-probs arrive in pieces (a long file, chunk by chunk)."""
        return Stream(self)


# Output frames (50 per second) the beam keeps undecided behind the newest one. Older frames
# are settled: the best hypothesis's path up to there is kept as text and the search drops
# their hypotheses, so memory no longer grows with the file. Every hypothesis in a beam of
# 20 shares its ancestor of 10 s ago on any real speech (checked by comparing streamed and
# whole decodes of long files in the tests); flashlight may look back up to 100 frames more
# to end the settled part at a finished word.
LOOK_BACK_FRAMES = 500
SETTLE_EVERY_FRAMES = 1000  # frames decoded between two settlements, beyond the look-back
_FLASHLIGHT_EXTRA_LOOK_BACK = 100  # flashlight's kLookBackLimit


class Stream:
    """One utterance decoded as its log-probs arrive, in memory bounded by the look-back.

    Fed the same frames in any pieces, ``finish`` returns what one decode of the whole
    utterance returns (the tie-breaking offsets follow the frame's position in the
    utterance, not in the piece). Greedy keeps one byte per frame.
    """

    def __init__(self, decoder: Decoder):
        self.decoder = decoder
        self.frames = 0
        self.best_classes: list[np.ndarray] = []
        self.tokens: list[int] = []
        self.words: list[int] = []
        self.undecided = 0  # frames in flashlight's buffer since the last settlement
        self.search = None if decoder.options.method == "greedy" else decoder._new_search()
        if self.search is not None:
            self.search.decode_begin()

    def feed(self, log_probs: np.ndarray) -> None:
        if len(log_probs) == 0:
            return
        if self.search is None:
            self.best_classes.append(np.asarray(log_probs).argmax(axis=-1).astype(np.uint8))
            self.frames += len(log_probs)
            return
        emissions = np.asarray(log_probs, dtype=np.float32) + tie_breaker(self.frames, *log_probs.shape)
        emissions = np.ascontiguousarray(emissions)
        self.search.decode_step(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])
        self.frames += len(emissions)
        self.undecided += len(emissions)
        if self.undecided >= LOOK_BACK_FRAMES + _FLASHLIGHT_EXTRA_LOOK_BACK + SETTLE_EVERY_FRAMES:
            settled = self.search.get_best_hypothesis(LOOK_BACK_FRAMES)
            self._keep(settled)
            self.search.prune(LOOK_BACK_FRAMES)
            self.undecided -= len(settled.tokens) - 1

    def _keep(self, result: Any) -> None:
        """Appends a result's per-frame path; its first frame is the last one already kept."""
        skip = 1 if self.tokens else 0
        self.tokens.extend(result.tokens[skip:])
        self.words.extend(result.words[skip:])

    def finish(self) -> str:
        if self.search is None:
            return collapse(np.concatenate(self.best_classes) if self.best_classes else np.zeros(0, dtype=np.uint8))
        if self.frames == 0:
            return ""
        self.search.decode_end()
        self._keep(self.search.get_all_final_hypothesis()[0])
        if self.decoder.options.lm == "word":
            words = self.decoder.words
            return " ".join(words[index] for index in self.words if 0 <= index < len(words) - 1)
        # flashlight returns one token per frame: collapse repeats, then drop blanks.
        tokens = [token for token, _ in itertools.groupby(self.tokens) if token not in (BLANK_ID, -1)]
        return detokenize(tokens).strip()


TIE_BREAK_NATS = 1e-3
_TIE_BREAK_FRAMES = 4096


@cache
def _tie_break_table(classes: int) -> np.ndarray:
    """Per frame, the classes in a random order, each given a slot of ``TIE_BREAK_NATS / classes`` and a random
    place in its middle half: offsets of one frame are at least half a slot apart."""
    rng = np.random.default_rng(0)
    slots = np.argsort(rng.random((_TIE_BREAK_FRAMES, classes)), axis=1)
    places = rng.uniform(0.25, 0.75, (_TIE_BREAK_FRAMES, classes))
    return ((slots + places) * (TIE_BREAK_NATS / classes)).astype(np.float32)


def tie_breaker(start: int, frames: int, classes: int) -> np.ndarray:
    """Fixed offsets below ``TIE_BREAK_NATS`` per (frame, class) for frames ``start`` on, added to the log-probs.

    flashlight orders hypotheses of equal score by their memory addresses, so exact ties
    are broken by what the process allocated before: the same log-probs could decode
    differently after other utterances, or in another process. Quantized models produce
    exact ties all the time (their logits take few values): on int8 dev outputs, 207 of
    549 beam hypotheses changed between two runs. The offsets make exact ties vanish while
    moving no score by more than a thousandth of a nat per frame. They must survive float32
    rounding: offsets drawn independently could lie closer than a log-prob's last bit (two
    classes tied at -0.7188 in a bf16 model's output still tied after them), so each
    frame's are at least ``TIE_BREAK_NATS / (2 * classes)`` apart (1.4e-5 for 35 classes,
    more than the float32 spacing of any log-prob above -128).
    """
    table = _tie_break_table(classes)
    return table[(start + np.arange(frames)) % len(table)]


def arpa_unigrams(path: Path) -> list[str]:
    """The words of an ARPA file's 1-grams, in file order, without the sentence markers."""
    words, in_unigrams = [], False
    with open(path, encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if line.startswith("\\"):
                if in_unigrams:
                    break
                in_unigrams = line == "\\1-grams:"
            elif in_unigrams and line:
                word = line.split("\t")[1]
                if word not in (SENTENCE_START, SENTENCE_END, UNKNOWN):
                    words.append(word)
    return words
