"""Turning model outputs into text."""

from __future__ import annotations

import numpy as np

from speechquant.text import BLANK_ID, detokenize


def greedy(log_probs: np.ndarray, length: int) -> str:
    """Best path: the most likely class per frame, repeats collapsed, blanks removed."""
    best = np.asarray(log_probs[:length]).argmax(axis=-1)
    if best.size == 0:
        return ""
    keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != BLANK_ID)
    return detokenize(best[keep].tolist())
