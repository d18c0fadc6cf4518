"""CTC's length rule: an utterance needs enough output frames for its label.

CTC emits one symbol per output frame and needs a blank between two equal letters, so
a label of L letters with R adjacent repeats needs at least L + R output frames.
Wav2Letter's conv0 (kernel 48, stride 2, padding 23) halves the input frame rate and
every later conv keeps the length, so the model's output length follows from conv0.
"""

from __future__ import annotations

import itertools

CONV0_KERNEL, CONV0_STRIDE, CONV0_PADDING = 48, 2, 23


def output_frames(input_frames: int) -> int:
    """The model's output length for ``input_frames`` feature frames."""
    return max(0, (input_frames + 2 * CONV0_PADDING - CONV0_KERNEL) // CONV0_STRIDE + 1)


def min_output_frames(label: list[int]) -> int:
    """The fewest output frames that can emit ``label`` under CTC."""
    repeats = sum(first == second for first, second in itertools.pairwise(label))
    return len(label) + repeats
