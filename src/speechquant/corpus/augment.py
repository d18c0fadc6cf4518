"""Acoustic conditions espeak-ng alone never gives: rooms, telephones, codecs, speed, level, noise.

A model trained on clean espeak-ng speech hears the synthesizer, not speech: a room's echo
or a telephone's band smear the very cues it learned. Each function here turns 16 kHz float
samples into what one such condition would make of them; ``Augmentation`` holds what was
drawn for one utterance, from a generator seeded by the utterance alone, so the corpus stays
byte-identical whatever the worker count.

Why these and not a library: each is a few lines of NumPy over samples already in memory
(an FFT convolution, a band mask, a companding law), costs milliseconds per utterance and
adds no dependency; the one real codec (Opus) comes from libsndfile through soundfile,
which the project already uses.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import soundfile
import soxr

from speechquant.audio import SAMPLE_RATE
from speechquant.params import Checked, check_ordered, limits

NOISE_COLOURS = ("white", "pink", "brown")  # power falling as 1/f^0, 1/f^1, 1/f^2
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE = 8000
OPUS_RATE = 8000  # Opus narrowband: the lowest rate it encodes, where its losses are largest
MU = 255.0  # G.711 mu-law


@dataclass(frozen=True)
class Reverb(Checked):
    probability: float = field(default=0.0, metadata=limits(0, 1))
    rt60_s: tuple[float, float] = field(default=(0.2, 0.6), metadata=limits(0.05, 2.0))  # decay to -60 dB


@dataclass(frozen=True)
class Channel(Checked):
    """A telephone line (300-3400 Hz at 8 kHz, G.711 mu-law) or an Opus round trip, one or the other."""

    probability: float = field(default=0.0, metadata=limits(0, 1))
    opus_share: float = field(default=0.5, metadata=limits(0, 1))  # of channel-degraded utterances: Opus


@dataclass(frozen=True)
class Speed(Checked):
    probability: float = field(default=0.0, metadata=limits(0, 1))
    factor: tuple[float, float] = field(default=(0.9, 1.1), metadata=limits(0.5, 2.0))  # tempo and pitch alike


@dataclass(frozen=True)
class Level(Checked):
    probability: float = field(default=0.0, metadata=limits(0, 1))
    gain_db: tuple[float, float] = field(default=(-30.0, 0.0), metadata=limits(-60, 0))


@dataclass(frozen=True)
class Babble(Checked):
    """Other synthesized talkers under the utterance, each saying another training sentence."""

    probability: float = field(default=0.0, metadata=limits(0, 1))
    talkers: tuple[int, int] = field(default=(2, 4), metadata=limits(1, 8))
    snr_db: tuple[float, float] = field(default=(5.0, 20.0), metadata=limits(-20, 100))


@dataclass(frozen=True)
class AugmentOptions(Checked):
    """The ``data.synth.augment`` params: the training split's conditions, each with its probability."""

    reverb: Reverb = field(default_factory=Reverb)
    channel: Channel = field(default_factory=Channel)
    speed: Speed = field(default_factory=Speed)
    level: Level = field(default_factory=Level)
    babble: Babble = field(default_factory=Babble)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ordered(
            "data.synth.augment",
            {
                "reverb.rt60_s": self.reverb.rt60_s,
                "speed.factor": self.speed.factor,
                "level.gain_db": self.level.gain_db,
                "babble.talkers": self.babble.talkers,
                "babble.snr_db": self.babble.snr_db,
            },
        )


@dataclass(frozen=True)
class Augmentation:
    """What one utterance gets; None: that condition is off for it."""

    rt60_s: float | None = None
    channel: str | None = None  # "telephone" | "opus"
    speed: float | None = None
    gain_db: float | None = None
    babble_snr_db: float | None = None
    babble_talkers: int = 0
    brown_noise_snr_db: float | None = None  # dev_unseen_voice's noise, a colour training never has
    seed: int = 0  # the impulse response's and the babble's draws


def draw(options: AugmentOptions, rng: np.random.Generator) -> Augmentation:
    """Every condition's coin and value drawn in a fixed order, so turning one off leaves the others' draws alone."""
    coins = rng.random(5)
    rt60 = float(rng.uniform(*options.reverb.rt60_s))
    channel = "opus" if rng.random() < options.channel.opus_share else "telephone"
    speed = float(rng.uniform(*options.speed.factor))
    gain = float(rng.uniform(*options.level.gain_db))
    talkers = int(rng.integers(options.babble.talkers[0], options.babble.talkers[1] + 1))
    babble_snr = float(rng.uniform(*options.babble.snr_db))
    seed = int(rng.integers(2**63))
    babbles = bool(coins[4] < options.babble.probability)
    return Augmentation(
        rt60_s=rt60 if coins[0] < options.reverb.probability else None,
        channel=channel if coins[1] < options.channel.probability else None,
        speed=speed if coins[2] < options.speed.probability else None,
        gain_db=gain if coins[3] < options.level.probability else None,
        babble_snr_db=babble_snr if babbles else None,
        babble_talkers=talkers if babbles else 0,
        seed=seed,
    )


def change_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Played ``factor`` times faster: shorter and higher, as a tape or a resampler would make it."""
    return soxr.resample(samples, SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ").astype(np.float32)


def impulse_response(rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A room's impulse response: the direct sound, then Gaussian reflections decaying 60 dB in ``rt60_s``.

    The statistical model of late reverberation; it lacks a real room's early reflections,
    which matter less to a recognizer than the smearing the decay causes.
    """
    length = max(int(rt60_s * SAMPLE_RATE), 1)
    t = np.arange(length) / SAMPLE_RATE
    response = rng.standard_normal(length) * np.exp(-6.908 * t / rt60_s)
    response[0] = 0.0
    response *= 0.5 / max(float(np.sqrt(np.sum(response**2))), 1e-12)  # reverberant energy a quarter of direct
    response[0] = 1.0
    return response


def convolve(samples: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``samples`` through ``response`` by FFT, cut to the input's length (the echo's tail after the end is lost)."""
    size = 1 << int(np.ceil(np.log2(len(samples) + len(response) - 1)))
    out = np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(response, size), size)
    return out[: len(samples)].astype(np.float32)


def band_limit(samples: np.ndarray, rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Everything outside ``[low_hz, high_hz]`` removed (a brick-wall mask in the frequency domain)."""
    spectrum = np.fft.rfft(samples)
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[(frequencies < low_hz) | (frequencies > high_hz)] = 0
    return np.fft.irfft(spectrum, len(samples)).astype(np.float32)


def telephone(samples: np.ndarray) -> np.ndarray:
    """A narrowband telephone call: 300-3400 Hz at 8 kHz, each sample through 8-bit G.711 mu-law."""
    narrow = soxr.resample(samples, SAMPLE_RATE, TELEPHONE_RATE, quality="HQ")
    narrow = band_limit(np.clip(narrow, -1, 1), TELEPHONE_RATE, *TELEPHONE_BAND_HZ)
    companded = np.sign(narrow) * np.log1p(MU * np.abs(np.clip(narrow, -1, 1))) / np.log1p(MU)
    quantized = np.round(companded * 127) / 127
    expanded = np.sign(quantized) * ((1 + MU) ** np.abs(quantized) - 1) / MU
    return soxr.resample(expanded.astype(np.float32), TELEPHONE_RATE, SAMPLE_RATE, quality="HQ").astype(np.float32)


def opus_round_trip(samples: np.ndarray) -> np.ndarray:
    """Encoded to Opus at 8 kHz and decoded again, in memory, at libsndfile's lowest bitrate setting."""
    narrow = np.clip(soxr.resample(samples, SAMPLE_RATE, OPUS_RATE, quality="HQ"), -1, 1)
    encoded = io.BytesIO()
    soundfile.write(encoded, narrow, OPUS_RATE, format="OGG", subtype="OPUS", compression_level=1.0)
    encoded.seek(0)
    decoded, rate = soundfile.read(encoded, dtype="float32")
    decoded = soxr.resample(decoded, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    out = np.zeros(len(samples), dtype=np.float32)  # the codec's padding and delay make lengths differ slightly
    out[: min(len(out), len(decoded))] = decoded[: len(out)]
    return out


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f^k (white k=0, pink k=1, brown k=2), unit power."""
    noise = rng.standard_normal(length)
    exponent = NOISE_COLOURS.index(colour)
    if exponent:
        spectrum = np.fft.rfft(noise)
        spectrum /= np.maximum(np.arange(len(spectrum)), 1) ** (exponent / 2)
        noise = np.fft.irfft(spectrum, n=length)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def mix_at_snr(samples: np.ndarray, interference: np.ndarray, snr_db: float) -> np.ndarray:
    """``samples`` plus ``interference`` scaled to ``snr_db`` below the speech's power."""
    speech_power = float(np.mean(samples.astype(np.float64) ** 2))
    interference_power = max(float(np.mean(interference.astype(np.float64) ** 2)), 1e-20)
    return (samples + interference * np.sqrt(speech_power / 10 ** (snr_db / 10) / interference_power)).astype(
        np.float32
    )


def babble_of(talkers: list[np.ndarray], length: int) -> np.ndarray:
    """Several talkers at equal power, each looped or cut to ``length`` samples."""
    mixed = np.zeros(length)
    for voice in talkers:
        if voice.size == 0:
            continue
        looped = np.resize(voice, length)
        mixed += looped / max(float(np.sqrt(np.mean(looped**2))), 1e-12)
    return mixed.astype(np.float32)
