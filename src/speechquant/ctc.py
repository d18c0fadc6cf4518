"""Wav2Letter's layer geometry, CTC's length rule and its best-path reading.

Shared by the model, the data screen, training's dev CER and the decoders.

CTC emits one symbol per output frame and needs a blank between two equal letters, so
a label of L letters with R adjacent repeats needs at least L + R output frames. The
output length follows from the convs' kernels, strides and paddings, which every model
preset shares: only channel widths differ between presets.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np

from speechquant.text import BLANK_ID, detokenize


class ConvGeometry(NamedTuple):
    kernel: int
    stride: int
    padding: int

    @property
    def keeps_length(self) -> bool:
        """Whether every input length comes out as it went in (stride 1, "same" padding)."""
        return self.stride == 1 and 2 * self.padding == self.kernel - 1

    @property
    def pointwise(self) -> bool:
        """Whether each output frame reads a single input frame: padding can reach no valid frame."""
        return self.kernel == 1 and self.padding == 0


# conv0 halves the frame rate; conv8 (even kernel 32, padding 16) adds one frame.
LAYERS = (
    ConvGeometry(48, 2, 23),
    *[ConvGeometry(7, 1, 3)] * 7,
    ConvGeometry(32, 1, 16),
    ConvGeometry(1, 1, 0),
    ConvGeometry(1, 1, 0),
)
N_LAYERS = len(LAYERS)
LAYER_NAMES = tuple(f"conv{i}" for i in range(N_LAYERS))  # the names every report and quant.exclude use


def unclamped_output_length(length: Any, geometry: ConvGeometry) -> Any:
    """A conv's output length for an int, an array or a tensor of input lengths; below 0 for too short an input."""
    return (length + 2 * geometry.padding - geometry.kernel) // geometry.stride + 1


def conv_output_length(length: int, geometry: ConvGeometry) -> int:
    return max(0, unclamped_output_length(length, geometry))


def output_frames(input_frames: int) -> int:
    """The model's output length for ``input_frames`` feature frames."""
    for geometry in LAYERS:
        input_frames = conv_output_length(input_frames, geometry)
    return input_frames


def min_output_frames(label: list[int]) -> int:
    """The fewest output frames that can emit ``label`` under CTC."""
    repeats = sum(first == second for first, second in itertools.pairwise(label))
    return len(label) + repeats


def greedy(log_probs: np.ndarray, length: int) -> str:
    """Best path: the most likely class per frame, repeats collapsed, blanks removed."""
    return collapse(np.asarray(log_probs[:length]).argmax(axis=-1))


def collapse(best: np.ndarray) -> str:
    """The text of a per-frame class path: repeats collapsed, blanks removed."""
    if best.size == 0:
        return ""
    keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != BLANK_ID)
    return detokenize(best[keep].tolist())
