"""CTC loss in NumPy, so that evaluating ONNX models never needs PyTorch."""

from __future__ import annotations

import numpy as np

from speechquant.text import BLANK_ID


def ctc_loss(log_probs: np.ndarray, label: list[int]) -> float:
    """Negative log-likelihood of ``label`` under CTC for one utterance's (frames, classes) log-probs.

    The standard forward algorithm over the label with blanks interleaved, in log space;
    ``inf`` when the utterance has too few frames for its label.
    """
    extended = np.full(2 * len(label) + 1, BLANK_ID, dtype=np.int64)
    extended[1::2] = label
    states = len(extended)
    # A state may skip the blank before it unless it repeats the letter two states back.
    can_skip = np.zeros(states, dtype=bool)
    can_skip[2:] = (extended[2:] != BLANK_ID) & (extended[2:] != extended[:-2])
    alpha = np.full(states, -np.inf)
    if len(log_probs) == 0:
        return float("inf") if label else 0.0
    alpha[0] = log_probs[0, extended[0]]
    if states > 1:
        alpha[1] = log_probs[0, extended[1]]
    for frame in log_probs[1:]:
        stay = alpha
        step = np.concatenate([[-np.inf], alpha[:-1]])
        skip = np.full(states, -np.inf)
        skip[2:] = np.where(can_skip[2:], alpha[:-2], -np.inf)
        alpha = np.logaddexp(np.logaddexp(stay, step), skip) + frame[extended]
    total = np.logaddexp(alpha[-1], alpha[-2]) if states > 1 else alpha[-1]
    return float(-total)
