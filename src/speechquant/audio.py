"""Audio loading and the log-mel features the model reads (40 bands, 25 ms / 10 ms by default).

Log-mel is computed in float64 NumPy with a Slaney-style mel filterbank built here,
one implementation for the features stage and the runtime (which must not need torch;
torchaudio's wheels need CUDA libraries and do not import beside CPU torch anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile
import soxr

from speechquant.params import Checked, limits

SAMPLE_RATE = 16_000
LOG_FLOOR = 1e-10  # power below this is silence; keeps log() finite on digital zeros
DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class FeatureOptions(Checked):
    """The ``features`` params: how audio becomes the model's input; the defaults are the study's.

    The features stage computes training input with them, and every exported model
    carries them (``modelcard``), so that ``transcribe``, evaluation and the benchmark
    compute and count frames as training did. ``dtype`` is the stored precision: the
    runtime rounds its features to it.
    """

    n_mels: int = field(default=40, metadata=limits(1, 512))
    window_ms: float = field(default=25.0, metadata=limits(above=0, high=1000))
    hop_ms: float = field(default=10.0, metadata=limits(above=0, high=1000))
    dtype: str = field(default="float16", metadata=limits(choices=DTYPES))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_ms < self.hop_ms:
            raise ValueError(
                f"hop_ms {self.hop_ms:g} is longer than window_ms {self.window_ms:g}: samples would be skipped"
            )

    @property
    def frames_per_second(self) -> float:
        return SAMPLE_RATE / self.hop_length

    @classmethod
    def of_store(cls, meta: dict) -> FeatureOptions:
        """The options a feature store was computed with (its ``meta.json``)."""
        return cls(n_mels=meta["n_mels"], window_ms=meta["window_ms"], hop_ms=meta["hop_ms"], dtype=meta["dtype"])

    @property
    def win_length(self) -> int:
        return round(SAMPLE_RATE * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(SAMPLE_RATE * self.hop_ms / 1000)

    @property
    def n_fft(self) -> int:
        """The next power of two, for a fast FFT and finer bins than the window alone gives."""
        return 1 << (self.win_length - 1).bit_length()


def load_audio(path: str | Path) -> np.ndarray:
    """Read any file soundfile can, mix to mono, resample to 16 kHz; float32 in [-1, 1]."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, logarithmic, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    logarithmic = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, logarithmic, linear)


@lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, n_fft: int) -> np.ndarray:
    """Triangular, area-normalized filters from 0 Hz to Nyquist, shape (n_mels, n_fft // 2 + 1)."""
    bin_hz = np.linspace(0, SAMPLE_RATE / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz - lower) / (center - lower)
    falling = (upper - bin_hz) / (upper - center)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= 2.0 / (upper - lower)  # equal area per filter, as Slaney's norm
    return filters.astype(np.float32)


def mel_power(samples: np.ndarray, options: FeatureOptions = FeatureOptions()) -> np.ndarray:
    """Mel power spectrogram, shape (frames, n_mels), float64: the quantity HW4P2 ships.

    A centered, reflect-padded, periodic-Hann STFT (``torch.stft``'s conventions) in
    float64 NumPy. Training features and the runtime both come from this one function:
    a float32 STFT rounds differently on different CPUs, and two implementations that
    agree only to ~2e-4 made the model see slightly other inputs in ``transcribe`` than
    in training.
    """
    samples = np.asarray(samples, dtype=np.float64)
    half = options.n_fft // 2
    mode = "reflect" if len(samples) > half else "constant"  # reflect needs more samples than the pad
    padded = np.pad(samples, half, mode=mode)
    frames = 1 + (len(padded) - options.n_fft) // options.hop_length
    window = np.zeros(options.n_fft, dtype=np.float64)
    offset = (options.n_fft - options.win_length) // 2
    window[offset : offset + options.win_length] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(options.win_length) / options.win_length
    )
    starts = np.arange(frames) * options.hop_length
    framed = padded[starts[:, None] + np.arange(options.n_fft)] * window
    power = np.abs(np.fft.rfft(framed, axis=1)) ** 2  # (frames, bins)
    return power @ mel_filterbank(options.n_mels, options.n_fft).T.astype(np.float64)


def log_of_power(power: np.ndarray) -> np.ndarray:
    """The one place mel power becomes features, for computed and HW4P2's given spectra alike."""
    return np.log(np.maximum(power, LOG_FLOOR)).astype(np.float32)


def log_mel(samples: np.ndarray, options: FeatureOptions = FeatureOptions()) -> np.ndarray:
    """Natural-log mel power, shape (frames, n_mels), as float32 holding values of ``options.dtype``.

    A model trained on float16 features gets its runtime input rounded to float16 too,
    so that it sees exactly what training gave it.
    """
    return log_of_power(mel_power(samples, options)).astype(options.dtype).astype(np.float32)
