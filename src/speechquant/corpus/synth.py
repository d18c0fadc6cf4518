"""The embedded default corpus: English sentences spoken by espeak-ng, built offline.

Every choice for utterance ``i`` of a split (sentence, accent, voice variant, speed,
pitch, pitch range, word gap, noise) comes from a generator seeded with
``(seed, split, i)``, and audio is made in fixed shards of ``SHARD_SIZE`` utterances,
each in a fresh process. So the same params give byte-identical audio whatever the
number of workers, and an espeak crash costs one counted utterance, not the stage.
The training split's extra conditions (``augment``: rooms, channels, speed, level,
babble) come from a second generator seeded with ``(seed, split, i, 1)``, so they leave
every other choice, and the corpus with them all off, exactly as before.

Two out-of-domain dev splits measure what the in-domain ones cannot:
``dev_unseen_text`` is the Jargon File's sentences (a text domain training never sees)
spoken as dev is; ``dev_unseen_voice`` is dev's sentences spoken by the voice variants in
``held_out`` (never in training), faster than training speaks, in a far-field room with
brown noise, conditions the training split does not have.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import soxr
from tqdm import tqdm

from speechquant.audio import SAMPLE_RATE
from speechquant.corpus import augment
from speechquant.corpus.augment import Augmentation, AugmentOptions
from speechquant.corpus.espeak import Espeak, Voice, available_voices
from speechquant.corpus.isolation import run_isolated
from speechquant.corpus.sentences import check_texts, sentence_pools
from speechquant.errors import UserError
from speechquant.params import Checked, check_ordered, limits
from speechquant.skips import SkipLog
from speechquant.splits import ALL_SPLITS
from speechquant.store import StoreWriter, Utterance

SHARD_SIZE = 32
# This many failures in a row means synthesis is broken, not unlucky: stop and say so.
MAX_CONSECUTIVE_FAILURES = 2 * SHARD_SIZE


@dataclass(frozen=True)
class HeldOutOptions(Checked):
    """The ``data.synth.held_out`` params: how ``dev_unseen_voice`` differs from anything in training."""

    variants: tuple[str, ...] = ("m8", "klatt5", "iven", "shelby", "quincy", "edward", "aunty", "rob")
    words_per_minute: tuple[int, int] = field(default=(230, 280), metadata=limits(80, 450))
    rt60_s: tuple[float, float] = field(default=(0.7, 1.2), metadata=limits(0.05, 2.0))  # a far-field room
    brown_noise_snr_db: tuple[float, float] = field(default=(10.0, 25.0), metadata=limits(-20, 100))


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
    texts: tuple[str, ...]  # sentence lists spoken in train, dev and test: names in TEXTS
    held_out: HeldOutOptions = field(default_factory=HeldOutOptions)
    augment: AugmentOptions = field(default_factory=AugmentOptions)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ordered(
            "data.synth",
            {
                **{name: getattr(self, name) for name in ("words_per_minute", "pitch", "pitch_range", "word_gap")},
                "noise_snr_db": self.noise_snr_db,
                "held_out.words_per_minute": self.held_out.words_per_minute,
                "held_out.rt60_s": self.held_out.rt60_s,
                "held_out.brown_noise_snr_db": self.held_out.brown_noise_snr_db,
            },
        )
        if not self.languages or not self.variants or not self.held_out.variants:
            raise ValueError("data.synth.languages, variants and held_out.variants must not be empty")
        languages, variants = available_voices()
        for name, given, valid in (
            ("languages", self.languages, languages),
            ("variants", self.variants, variants),
            ("held_out.variants", self.held_out.variants, variants),
        ):
            unknown = sorted(set(given) - valid, key=str)
            if unknown:
                raise ValueError(f"data.synth.{name}: espeak-ng has no {unknown}; valid: {sorted(valid)}")
        check_texts(self.texts)
        both = sorted(set(self.held_out.variants) & set(self.variants))
        if both:
            raise ValueError(f"data.synth.held_out.variants: {both} also in data.synth.variants (training)")
        unknown = set(self.hours) - set(ALL_SPLITS)
        if unknown:
            raise ValueError(f"data.synth.hours: unknown splits {sorted(unknown)}; valid: {list(ALL_SPLITS)}")


@dataclass(frozen=True)
class Plan:
    """Everything needed to make one utterance."""

    id: str
    text: str
    voice: Voice
    noise_snr_db: float | None
    noise_seed: int
    espeak_seed: int
    augmentation: Augmentation = field(default_factory=Augmentation)
    babble: tuple[tuple[str, Voice, int], ...] = ()  # other talkers: sentence, voice, espeak seed


def _uniform_int(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _voice(
    options: SynthOptions, rng: np.random.Generator, variants: tuple[str, ...], speeds: tuple[int, int]
) -> Voice:
    return Voice(
        name=f"{options.languages[rng.integers(len(options.languages))]}+{variants[rng.integers(len(variants))]}",
        words_per_minute=_uniform_int(rng, speeds),
        pitch=_uniform_int(rng, options.pitch),
        pitch_range=_uniform_int(rng, options.pitch_range),
        word_gap=_uniform_int(rng, options.word_gap),
    )


def spoken_order(options: SynthOptions, split: str) -> list[str]:
    """A split's sentence pool in the seeded order its utterances speak it."""
    pool = sentence_pools(options.texts)[split]
    order = np.random.default_rng([options.seed, ALL_SPLITS.index(split)]).permutation(len(pool))
    return [pool[index] for index in order]


def plans(options: SynthOptions, split: str) -> Iterator[Plan]:
    """The endless, seeded sequence of utterances for a split (sentences reused once exhausted)."""
    split_number = ALL_SPLITS.index(split)
    pools = sentence_pools(options.texts)
    sentences = spoken_order(options, split)
    unseen_voice = split == "dev_unseen_voice"
    held_out = options.held_out
    for index in itertools.count():
        rng = np.random.default_rng([options.seed, split_number, index])
        if unseen_voice:
            voice = _voice(options, rng, held_out.variants, held_out.words_per_minute)
        else:
            voice = _voice(options, rng, options.variants, options.words_per_minute)
        noisy = rng.random() < options.noise_probability
        snr = float(rng.uniform(*options.noise_snr_db)) if noisy else None
        noise_seed, espeak_seed = int(rng.integers(2**63)), int(rng.integers(2**31))
        conditions = np.random.default_rng([options.seed, split_number, index, 1])
        augmentation, babble = Augmentation(), ()
        if split == "train":
            augmentation = augment.draw(options.augment, conditions)
            train = pools["train"]
            babble = tuple(
                (
                    train[conditions.integers(len(train))],
                    _voice(options, conditions, options.variants, options.words_per_minute),
                    int(conditions.integers(2**31)),
                )
                for _ in range(augmentation.babble_talkers)
            )
        elif unseen_voice:
            augmentation = Augmentation(
                rt60_s=float(conditions.uniform(*held_out.rt60_s)),
                brown_noise_snr_db=float(conditions.uniform(*held_out.brown_noise_snr_db)),
                seed=int(conditions.integers(2**63)),
            )
        yield Plan(
            id=f"synth-{split}-{index:06d}",
            text=sentences[index % len(sentences)],
            voice=voice,
            noise_snr_db=None if unseen_voice else snr,
            noise_seed=noise_seed,
            espeak_seed=espeak_seed,
            augmentation=augmentation,
            babble=babble,
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


def _synthesize(text: str, voice: Voice, seed: int) -> np.ndarray:
    espeak = _espeak()
    raw = espeak.synthesize(text, voice, seed)
    if raw.size == 0:
        raise RuntimeError("espeak-ng produced no audio")
    return soxr.resample(raw.astype(np.float32) / 32768.0, espeak.sample_rate, SAMPLE_RATE, quality="HQ")


def speak(plan: Plan) -> np.ndarray:
    """Make one utterance's 16 kHz int16 audio; runs in a worker process.

    The conditions apply in the order sound meets them: the talker's speed, the room, the
    other talkers and noise in it, then the line or codec, then the recording level."""
    samples = _synthesize(plan.text, plan.voice, plan.espeak_seed)
    conditions = plan.augmentation
    rng = np.random.default_rng(conditions.seed)
    if conditions.speed is not None:
        samples = augment.change_speed(samples, conditions.speed)
    if conditions.rt60_s is not None:
        samples = augment.convolve(samples, augment.impulse_response(conditions.rt60_s, rng))
    if plan.babble and conditions.babble_snr_db is not None:
        talkers = [_synthesize(text, voice, seed) for text, voice, seed in plan.babble]
        samples = augment.mix_at_snr(samples, augment.babble_of(talkers, len(samples)), conditions.babble_snr_db)
    if conditions.brown_noise_snr_db is not None:
        brown = augment.coloured_noise(len(samples), "brown", rng)
        samples = augment.mix_at_snr(samples, brown, conditions.brown_noise_snr_db)
    if plan.noise_snr_db is not None:
        samples = add_noise(samples, plan.noise_snr_db, plan.noise_seed)
    if conditions.channel == "telephone":
        samples = augment.telephone(samples)
    elif conditions.channel == "opus":
        samples = augment.opus_round_trip(samples)
    if conditions.gain_db is not None:
        samples = samples * np.float32(10 ** (conditions.gain_db / 20))
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
            drawn = {key: value for key, value in vars(plan.augmentation).items() if value and key != "seed"}
            if drawn:  # only then: with every condition off the manifest stays as it was
                source["conditions"] = drawn
            writer.append(Utterance(plan.id, plan.text, 0, source), outcome.result)
            seconds += len(outcome.result) / SAMPLE_RATE
            progress.update(min(int(seconds), progress.total) - progress.n)
        outcomes.close()
        writer.meta.update(skipped=skips.as_dict(), dropped_chars=0)
    return writer.meta
