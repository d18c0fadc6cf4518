"""Turning utterance stores into padded training batches.

Batches are built from length buckets (utterances of similar length together, so little
compute goes to padding), hold at most ``batch_frames`` frames, and are shuffled per
epoch from ``(seed, epoch)`` alone: a resumed run sees exactly the batches an
uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from speechquant.params import Checked, check_ordered, limits
from speechquant.store import Store, pad_rows
from speechquant.text import tokenize


@dataclass(frozen=True)
class SpecAugmentOptions(Checked):
    """Masks per utterance: frequency masks span mel bins, time masks span frames."""

    freq_masks: int = field(default=2, metadata=limits(0, 100))
    freq_width: int = field(default=8, metadata=limits(0, 10_000))
    time_masks: int = field(default=2, metadata=limits(0, 100))
    time_width: int = field(default=40, metadata=limits(0, 100_000))


@dataclass(frozen=True)
class TempoOptions(Checked):
    """Speech made faster (or slower) per utterance by resampling its log-mel frames in time.

    espeak-ng speaks no faster than the rates training draws, and a model that never heard
    fast speech makes more than twice its errors on it (CER x2.14 to x2.27 in four trainings:
    ``reports/tempo_h100.json``, ``reports/tempo_seeds_h100.json``). Changing the tempo of
    the samples with soxr (``data.synth.augment.speed``) moves the pitch and the formants
    with it and did not teach fast speech; resampling frames keeps every frame's spectrum
    and changes only how long each sound lasts, and did (README "Fast speech").
    It costs nothing at corpus build: the draw is made per batch, from the epoch's generator.
    """

    probability: float = field(default=0.0, metadata=limits(0, 1))
    factor: tuple[float, float] = field(default=(0.6, 1.0), metadata=limits(0.3, 3.0))  # frames kept per frame

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ordered("train.tempo", {"factor": self.factor})


# CTC needs at least one output frame per label (two for a repeated letter); the stride-2
# network keeps half the input frames, so a tempo change never leaves fewer than 2.6 input
# frames per label: 1.3 output frames, the blanks between repeats included for English text.
_MIN_FRAMES_PER_LABEL = 2.6


@dataclass
class Batch:
    features: torch.Tensor  # (batch, frames, n_mels), zero beyond each length
    lengths: torch.Tensor  # (batch,) frames
    targets: torch.Tensor  # (sum of label lengths,) concatenated token ids
    target_lengths: torch.Tensor  # (batch,)
    indices: list[int]  # positions in the store, for reporting


def spec_augment(features: np.ndarray, options: SpecAugmentOptions, rng: np.random.Generator) -> np.ndarray:
    """Replace random mel-bin bands and frame spans by the utterance's mean per bin.

    Axis 0 is time (frames), axis 1 frequency (mel bins); the study's code had them
    swapped. The mean, not zero, is the neutral value for un-normalized log-mel.
    """
    augmented = features.copy()
    frames, bins = augmented.shape
    mean = augmented.mean(axis=0, keepdims=True) if frames else np.zeros((1, bins), augmented.dtype)
    for _ in range(options.freq_masks):
        width = int(rng.integers(0, options.freq_width + 1))
        start = int(rng.integers(0, max(1, bins - width + 1)))
        augmented[:, start : start + width] = mean[:, start : start + width]
    for _ in range(options.time_masks):
        width = int(rng.integers(0, min(options.time_width, frames // 5) + 1))
        start = int(rng.integers(0, max(1, frames - width + 1)))
        augmented[start : start + width, :] = mean
    return augmented


def change_tempo(features: np.ndarray, factor: float) -> np.ndarray:
    """``features`` resampled to ``round(frames * factor)`` frames, each interpolated between its two neighbours."""
    frames = features.shape[0]
    positions = np.linspace(0.0, frames - 1, max(1, round(frames * factor)))
    before = np.floor(positions).astype(np.int64)
    after = np.minimum(before + 1, frames - 1)
    weight = (positions - before)[:, None].astype(features.dtype)
    return features[before] * (1 - weight) + features[after] * weight


def tempo_factor(options: TempoOptions, frames: int, labels: int, rng: np.random.Generator) -> float:
    """The factor drawn for one utterance (1: unchanged), never faster than CTC can still align."""
    if options.probability == 0 or rng.random() >= options.probability:
        return 1.0
    drawn = float(rng.uniform(*options.factor))
    return max(drawn, min(1.0, _MIN_FRAMES_PER_LABEL * labels / max(frames, 1)))


class UtteranceSet:
    """A feature store with its labels tokenized once; only scored utterances are kept."""

    def __init__(self, store: Store):
        self.store = store
        self.indices = [i for i, u in enumerate(store.utterances) if u.text is not None]
        self.labels = [np.asarray(tokenize(store.utterances[i].text), dtype=np.int64) for i in self.indices]
        self.frames = np.diff(store.offsets)[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, batch_frames: int, seed: int, epoch: int, shuffle: bool) -> list[list[int]]:
        """Positions (into this set) grouped into length-bucketed batches.

        With ``shuffle``, lengths get a small random jitter before sorting, so buckets
        differ between epochs, and the batch order is shuffled too.
        """
        rng = np.random.default_rng([seed, epoch])
        keys = self.frames * (1.0 + (rng.uniform(-0.1, 0.1, len(self)) if shuffle else 0.0))
        order = np.argsort(keys, kind="stable")
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for position in order:
            frames = int(self.frames[position])
            if current and max(longest, frames) * (len(current) + 1) > batch_frames:
                batches.append(current)
                current, longest = [], 0
            current.append(int(position))
            longest = max(longest, frames)
        if current:
            batches.append(current)
        if shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def collate(
        self,
        positions: list[int],
        augment: SpecAugmentOptions | None = None,
        rng: np.random.Generator | None = None,
        tempo: TempoOptions | None = None,
    ) -> Batch:
        """Pad the chosen utterances into one batch (float32 features, int64 labels).

        With ``augment``, each utterance first gets its ``tempo`` change, then its masks.
        """
        features = [np.asarray(self.store[self.indices[p]], dtype=np.float32) for p in positions]
        if augment is not None:
            assert rng is not None
            tempo = tempo or TempoOptions()
            changed = []
            for position, utterance in zip(positions, features, strict=True):
                factor = tempo_factor(tempo, len(utterance), len(self.labels[position]), rng)
                utterance = change_tempo(utterance, factor) if factor != 1.0 else utterance
                changed.append(spec_augment(utterance, augment, rng))
            features = changed
        padded, lengths = pad_rows(features)
        labels = [self.labels[p] for p in positions]
        return Batch(
            features=torch.from_numpy(padded),
            lengths=torch.from_numpy(lengths),
            targets=torch.from_numpy(np.concatenate(labels)),
            target_lengths=torch.tensor([len(label) for label in labels], dtype=torch.int64),
            indices=[self.indices[p] for p in positions],
        )
