"""Choosing calibration and check utterances, and feeding them to ONNX Runtime's calibrators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod

from speechquant.errors import UserError
from speechquant.params import Checked, limits
from speechquant.store import Store

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


@dataclass(frozen=True)
class CalibrationOptions(Checked):
    """The ``quant.calibration`` params.

    ORT's histogram calibrators (percentile, entropy) stack every calibration output into
    one array, so they need inputs of one length: each utterance is cut to its middle
    ``frames`` frames, and utterances shorter than that are passed over. MinMax takes
    whole utterances.
    """

    method: str = field(default="percentile", metadata=limits(choices=CALIBRATION_METHODS))
    utterances: int = field(default=200, metadata=limits(1, 100_000))
    frames: int = field(default=300, metadata=limits(1, 100_000))
    seed: int = field(default=0, metadata=limits(0))

    def inputs(self, store: Store) -> list[dict[str, np.ndarray]]:
        """The calibration batches (one utterance each), chosen with ``seed``."""
        if self.method == "minmax":
            return utterance_inputs(store, self.utterances, self.seed)
        order = np.random.default_rng(self.seed).permutation(len(store))
        lengths = np.diff(store.offsets)
        chosen = sorted([int(i) for i in order if lengths[i] >= self.frames][: self.utterances])
        if not chosen:
            raise UserError(f"no calibration utterance has {self.frames} frames; lower quant.calibration.frames")
        inputs = []
        for index in chosen:
            start = (int(lengths[index]) - self.frames) // 2
            features = np.asarray(store[index], dtype=np.float32)[start : start + self.frames]
            inputs.append({"features": features[None], "lengths": np.array([self.frames], dtype=np.int64)})
        return inputs


def seeded_subset(size: int, count: int, seed: int) -> list[int]:
    """``count`` of the indices ``0 .. size-1`` chosen with ``seed``, in order; all for 0 or ``count >= size``."""
    if count == 0 or count >= size:
        return list(range(size))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(size, size=count, replace=False))


def utterance_inputs(store: Store, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` utterances of a store chosen with ``seed``, each as a batch of one."""
    chosen = seeded_subset(len(store), count, seed)
    return [
        {
            "features": np.asarray(store[int(i)], dtype=np.float32)[None],
            "lengths": np.array([len(store[int(i)])], dtype=np.int64),
        }
        for i in chosen
    ]


class CalibrationReader(CalibrationDataReader):
    """The inputs one at a time, as ORT's calibrators ask for them."""

    def __init__(self, inputs: list[dict[str, np.ndarray]]):
        self._inputs: Iterator[dict[str, np.ndarray]] = iter(inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._inputs, None)
