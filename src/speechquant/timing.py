"""Timing runners side by side: interleaved rounds, and speed-ups taken within a round.

Apart from the benchmark so that ``tools/runtime_check.py`` times another machine the same
way without the pipeline's data libraries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 1000


def time_interleaved(
    runners: dict[str, Callable[[np.ndarray, np.ndarray], Any]],
    features: np.ndarray,
    lengths: np.ndarray,
    rounds: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Seconds per call of every runner, timed in interleaved, rotated rounds after warm-up."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name](features, lengths)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            runners[name](features, lengths)
            times[name].append(time.perf_counter() - started)
    return times


def paired_speedup(reference: list[float], variant: list[float], seed: int = 0) -> tuple[float, list[float]]:
    """The median over rounds of reference / variant time within each round, and its 95% interval
    from rounds resampled. Within a round the two ran seconds apart, so a neighbour's burst
    slows both; a ratio of the two medians would pair a quiet round's time with a busy one's."""
    ratios = np.asarray(reference) / np.asarray(variant)
    picks = np.random.default_rng(seed).integers(0, len(ratios), size=(BOOTSTRAP_SAMPLES, len(ratios)))
    low, high = np.percentile(np.median(ratios[picks], axis=1), [2.5, 97.5])
    return round(float(np.median(ratios)), 3), [round(float(low), 3), round(float(high), 3)]
