"""Turning model outputs into text: greedy best path, or flashlight-text's CTC beam search."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from speechquant.text import BLANK_ID, CHAR_TO_ID, detokenize

METHODS = ("greedy", "beam")


@dataclass(frozen=True)
class DecoderOptions:
    """How to decode; the defaults are the study's lexicon-free beam of 20."""

    method: str = "beam"
    beam_size: int = 20
    beam_size_token: int = 35  # tokens considered per frame; all of them by default
    beam_threshold: float = 25.0  # drop hypotheses this far below the best

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.beam_size < 1 or self.beam_size_token < 1:
            raise ValueError("beam_size and beam_size_token must be at least 1")


def greedy(log_probs: np.ndarray, length: int) -> str:
    """Best path: the most likely class per frame, repeats collapsed, blanks removed."""
    best = np.asarray(log_probs[:length]).argmax(axis=-1)
    if best.size == 0:
        return ""
    keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != BLANK_ID)
    return detokenize(best[keep].tolist())


class Decoder:
    """Decodes one utterance's log-probs (frames, classes) to text with the chosen method."""

    def __init__(self, options: DecoderOptions):
        self.options = options

    @cached_property
    def _beam(self):
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconFreeDecoder,
            LexiconFreeDecoderOptions,
            ZeroLM,
        )

        settings = LexiconFreeDecoderOptions(
            beam_size=self.options.beam_size,
            beam_size_token=self.options.beam_size_token,
            beam_threshold=self.options.beam_threshold,
            lm_weight=0.0,
            sil_score=0.0,
            log_add=True,  # merged paths add up, as CTC prefix beam search requires
            criterion_type=CriterionType.CTC,
        )
        return LexiconFreeDecoder(settings, ZeroLM(), CHAR_TO_ID[" "], BLANK_ID, [])

    def __call__(self, log_probs: np.ndarray, length: int) -> str:
        if self.options.method == "greedy":
            return greedy(log_probs, length)
        emissions = np.ascontiguousarray(log_probs[:length], dtype=np.float32)
        if len(emissions) == 0:
            return ""
        best = self._beam.decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])[0]
        # flashlight returns one token per frame: collapse repeats, then drop blanks.
        tokens = [token for token, _ in itertools.groupby(best.tokens) if token not in (BLANK_ID, -1)]
        return detokenize(tokens).strip()
