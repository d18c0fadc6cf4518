"""The embedded default corpus: English sentences spoken by espeak-ng, built offline.

Every choice for utterance ``i`` of a split (sentence, accent, voice variant, speed,
pitch, pitch range, word gap, noise) comes from a generator seeded with
``(seed, split, i)``, and audio is made in fixed shards of ``SHARD_SIZE`` utterances,
each in a fresh process. So the same params give byte-identical audio whatever the
number of workers, and an espeak crash costs one counted utterance, not the stage.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import soxr
from tqdm import tqdm

from speechquant.audio import SAMPLE_RATE
from speechquant.corpus.espeak import Espeak, Voice, available_voices
from speechquant.corpus.isolation import run_isolated
from speechquant.errors import UserError
from speechquant.params import Checked, limits
from speechquant.skips import SkipLog
from speechquant.store import SPLITS, StoreWriter, Utterance

SENTENCE_DIR = Path(__file__).parent / "sentences"
SENTENCE_FILES = ("wordnet.txt.gz", "web.txt.gz")
SHARD_SIZE = 32
# This many failures in a row means synthesis is broken, not unlucky: stop and say so.
MAX_CONSECUTIVE_FAILURES = 2 * SHARD_SIZE
# Sentences go to a split by a hash of their text, so a dev or test sentence never
# occurs in train, whatever the seed or the hours asked for.
HELD_OUT_PERCENT = {"dev": 5, "test": 5}


@dataclass(frozen=True)
class SynthOptions(Checked):
    """The ``data.synth`` params; each range is inclusive ``[low, high]``."""

    seed: int = field(metadata=limits(0))
    hours: dict[str, float] = field(metadata=limits(above=0, high=10_000))  # an empty split fails only at train
    languages: tuple[str, ...]
    variants: tuple[str, ...]
    words_per_minute: tuple[int, int] = field(metadata=limits(80, 450))  # espeak-ng's range
    pitch: tuple[int, int] = field(metadata=limits(0, 99))
    pitch_range: tuple[int, int] = field(metadata=limits(0, 70))  # espeak-ng crashes on some voices above 80
    word_gap: tuple[int, int] = field(metadata=limits(0, 100))
    noise_probability: float = field(metadata=limits(0, 1))
    noise_snr_db: tuple[float, float] = field(metadata=limits(-20, 100))

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("words_per_minute", "pitch", "pitch_range", "word_gap", "noise_snr_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"data.synth.{name}: low {low} is above high {high}")
        if not self.languages or not self.variants:
            raise ValueError("data.synth.languages and data.synth.variants must not be empty")
        languages, variants = available_voices()
        for name, given, valid in (("languages", self.languages, languages), ("variants", self.variants, variants)):
            unknown = sorted(set(given) - valid, key=str)
            if unknown:
                raise ValueError(f"data.synth.{name}: espeak-ng has no {unknown}; valid: {sorted(valid)}")
        unknown = set(self.hours) - set(SPLITS)
        if unknown:
            raise ValueError(f"data.synth.hours: unknown splits {sorted(unknown)}; valid: {list(SPLITS)}")


@dataclass(frozen=True)
class Plan:
    """Everything needed to make one utterance."""

    id: str
    text: str
    voice: Voice
    noise_snr_db: float | None
    noise_seed: int
    espeak_seed: int


def split_of(sentence: str) -> str:
    """The split a sentence belongs to, fixed by its text alone."""
    bucket = int.from_bytes(hashlib.sha256(sentence.encode()).digest()[:4], "little") % 100
    if bucket < HELD_OUT_PERCENT["dev"]:
        return "dev"
    if bucket < HELD_OUT_PERCENT["dev"] + HELD_OUT_PERCENT["test"]:
        return "test"
    return "train"


@cache
def sentence_pools() -> dict[str, tuple[str, ...]]:
    """All committed sentences, grouped by split."""
    pools: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name in SENTENCE_FILES:
        with gzip.open(SENTENCE_DIR / name, "rt", encoding="utf-8") as lines:
            for line in lines:
                sentence = line.strip()
                if sentence:
                    pools[split_of(sentence)].append(sentence)
    return {split: tuple(sentences) for split, sentences in pools.items()}


def _uniform_int(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def plans(options: SynthOptions, split: str) -> Iterator[Plan]:
    """The endless, seeded sequence of utterances for a split (sentences reused once exhausted)."""
    split_number = SPLITS.index(split)
    pool = sentence_pools()[split]
    order = np.random.default_rng([options.seed, split_number]).permutation(len(pool))
    for index in itertools.count():
        rng = np.random.default_rng([options.seed, split_number, index])
        voice = Voice(
            name=f"{options.languages[rng.integers(len(options.languages))]}+"
            f"{options.variants[rng.integers(len(options.variants))]}",
            words_per_minute=_uniform_int(rng, options.words_per_minute),
            pitch=_uniform_int(rng, options.pitch),
            pitch_range=_uniform_int(rng, options.pitch_range),
            word_gap=_uniform_int(rng, options.word_gap),
        )
        noisy = rng.random() < options.noise_probability
        snr = float(rng.uniform(*options.noise_snr_db)) if noisy else None
        yield Plan(
            id=f"synth-{split}-{index:06d}",
            text=pool[order[index % len(pool)]],
            voice=voice,
            noise_snr_db=snr,
            noise_seed=int(rng.integers(2**63)),
            espeak_seed=int(rng.integers(2**31)),
        )


@cache
def _espeak() -> Espeak:
    """One library per worker process, made on first use inside that process."""
    return Espeak()


def add_noise(samples: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """Add white or pink noise at ``snr_db`` below the speech power."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(samples))
    if rng.random() < 0.5:  # pink: 1/f power, shaped in the frequency domain
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        noise = np.fft.irfft(spectrum, n=len(samples))
    speech_power = float(np.mean(samples.astype(np.float64) ** 2))
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10) / max(float(np.mean(noise**2)), 1e-20))
    return samples + noise


def speak(plan: Plan) -> np.ndarray:
    """Make one utterance's 16 kHz int16 audio; runs in a worker process."""
    espeak = _espeak()
    raw = espeak.synthesize(plan.text, plan.voice, plan.espeak_seed)
    if raw.size == 0:
        raise RuntimeError("espeak-ng produced no audio")
    samples = soxr.resample(raw.astype(np.float32) / 32768.0, espeak.sample_rate, SAMPLE_RATE, quality="HQ")
    if plan.noise_snr_db is not None:
        samples = add_noise(samples, plan.noise_snr_db, plan.noise_seed)
    peak = float(np.max(np.abs(samples)))
    if peak > 0.99:  # noise or resampling overshoot: scale down rather than clip
        samples *= 0.99 / peak
    return np.round(samples * 32767.0).astype(np.int16)


def build_split(options: SynthOptions, split: str, output: Path, workers: int) -> dict:
    """Synthesize ``options.hours[split]`` hours of audio into an audio store at ``output``.

    Shards are cut from the same endless plan whatever ``workers`` is, and the split
    stops at the first utterance that reaches the target: the result depends on the
    params alone.
    """
    target_s = options.hours.get(split, 0.0) * 3600
    skips = SkipLog()
    consecutive_failures = 0
    seconds = 0.0
    meta = {"kind": "audio", "sample_rate": SAMPLE_RATE, "source": "synth"}
    with (
        StoreWriter(output, np.int16, (), meta) as writer,
        tqdm(total=round(target_s), unit="s", desc=f"synth {split}", leave=False) as progress,
    ):
        outcomes = run_isolated(speak, plans(options, split), SHARD_SIZE, workers)
        while seconds < target_s:
            outcome = next(outcomes)
            plan: Plan = outcome.item
            if outcome.failure is not None:
                skips.add(f"synthesis failed: {outcome.failure}", plan.id)
                consecutive_failures += 1
                if consecutive_failures == MAX_CONSECUTIVE_FAILURES:
                    raise UserError(f"synthesis of {split} keeps failing, last: {outcome.failure}\n{skips.summary()}")
                continue
            consecutive_failures = 0
            source = {
                "voice": plan.voice.name,
                "words_per_minute": plan.voice.words_per_minute,
                "pitch": plan.voice.pitch,
                "pitch_range": plan.voice.pitch_range,
                "word_gap": plan.voice.word_gap,
                "noise_snr_db": plan.noise_snr_db,
            }
            writer.append(Utterance(plan.id, plan.text, 0, source), outcome.result)
            seconds += len(outcome.result) / SAMPLE_RATE
            progress.update(min(int(seconds), progress.total) - progress.n)
        outcomes.close()
        writer.meta.update(skipped=skips.as_dict(), dropped_chars=0)
    return writer.meta
