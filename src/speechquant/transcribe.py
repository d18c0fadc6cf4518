"""Transcribing audio files with any exported or quantized model, without PyTorch.

Long files are read, resampled and featurized in chunks, so memory stays bounded by the
chunk size, not the file length. Each chunk is run with ``context`` seconds of audio on
either side (more than the model's receptive field, about 1 s each way) and only its own
frames' log-probs are kept and fed to a streaming decoder, which settles all but the last
10 s of output as it goes: memory does not grow with the file, whatever its content.

The model normalizes each input by its own per-bin mean and variance, so a chunk run
alone would be normalized by the chunk's statistics, not the file's, and decode
differently from one pass over the file. A first pass therefore sums the file's
statistics; the second adds to each chunk, beyond the reach of its kept frames, filler
frames chosen so that the chunk plus filler has exactly the file's mean and variance.
The kept log-probs then equal those of one pass up to float rounding.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from speechquant.audio import SAMPLE_RATE, FeatureOptions, log_mel
from speechquant.ctc import LAYERS, conv_output_length, output_frames
from speechquant.decode import Decoder
from speechquant.errors import UserError
from speechquant.runtime import Model

STRIDE = LAYERS[0].stride  # feature frames per output frame
READ_BLOCK_SECONDS = 10.0


def receptive_frames() -> int:
    """Feature frames on either side that reach one output frame through every conv (about 1 s)."""
    left = right = 0
    jump = 1  # feature frames per step of the layer's input
    for geometry in LAYERS:
        left += geometry.padding * jump
        right += (geometry.kernel - 1 - geometry.padding) * jump
        jump *= geometry.stride
    return max(left, right)


def min_input_frames() -> int:
    """The fewest feature frames for which no conv's output is empty."""
    frames = 1
    while any(length == 0 for length in itertools.accumulate(LAYERS, conv_output_length, initial=frames)):
        frames += 1
    return frames


MIN_INPUT_FRAMES = min_input_frames()
MAX_CHUNK_SECONDS = 3600.0


@dataclass(frozen=True)
class ChunkOptions:
    """How long files are cut; ``context_seconds`` below the receptive field would change the output."""

    chunk_seconds: float = 30.0
    context_seconds: float = 3.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.chunk_seconds <= MAX_CHUNK_SECONDS:  # also refuses nan and inf
            raise ValueError(f"--chunk-seconds must be between 1 and {MAX_CHUNK_SECONDS:.0f}, got {self.chunk_seconds}")
        if not 0 <= self.context_seconds <= MAX_CHUNK_SECONDS:
            raise ValueError(f"--context-seconds must be between 0 and {MAX_CHUNK_SECONDS:.0f}")

    def check_reach(self, features: FeatureOptions) -> None:
        """Refuse a context shorter than the model's reach, which depends on its hop."""
        least = receptive_frames() * features.hop_length / SAMPLE_RATE
        if self.context_seconds < least:
            raise UserError(
                f"--context-seconds must be at least {least:.2f} (the model's reach on either side) "
                f"and at most {MAX_CHUNK_SECONDS:.0f}, got {self.context_seconds}"
            )

    def frames(self, seconds: float, hop: int) -> int:
        """Whole output frames' worth of feature frames of ``hop`` samples, so chunk edges fall on output frames."""
        return max(STRIDE, int(seconds * SAMPLE_RATE / hop) // STRIDE * STRIDE)


@dataclass
class Transcript:
    file: str
    text: str
    audio_seconds: float
    compute_seconds: float
    non_finite_samples: int = 0  # NaN or +-Inf samples read as silence


class Repairs:
    """Counts the non-finite samples (NaN, +-Inf) a file held; they are read as silence."""

    def __init__(self) -> None:
        self.non_finite = 0


def resampled_blocks(path: Path, repairs: Repairs | None = None) -> Iterator[np.ndarray]:
    """The file as 16 kHz mono float32 blocks, read and resampled a block at a time.

    A float file can hold NaN or +-Inf samples, which would turn every feature of the
    file into NaN: they are set to 0 and counted in ``repairs``. A file soundfile or
    soxr cannot read is a UserError naming it.
    """
    try:
        with soundfile.SoundFile(str(path)) as audio:
            resampler = soxr.ResampleStream(audio.samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            block = max(1, int(READ_BLOCK_SECONDS * audio.samplerate))
            while True:
                samples = audio.read(block, dtype="float32", always_2d=True)
                last = len(samples) < block
                mono = np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32)
                finite = np.isfinite(mono)
                if not finite.all():
                    if repairs is not None:
                        repairs.non_finite += int((~finite).sum())
                    mono = np.where(finite, mono, np.float32(0.0))
                out = mono if audio.samplerate == SAMPLE_RATE else resampler.resample_chunk(mono, last=last)
                if len(out):
                    yield out
                if last:
                    return
    except (OSError, RuntimeError, ValueError) as error:  # soundfile's and soxr's errors for unreadable files
        raise UserError(f"{path}: cannot read audio ({str(error).strip()[:200]})") from None


@dataclass
class Chunk:
    features: np.ndarray  # (frames, n_mels) from feature frame ``first`` on
    first: int
    keep_from: int  # first feature frame whose outputs are kept
    keep_to: int | None  # end (exclusive) of kept feature frames; None: to the end of the file


def chunks_of(
    path: Path, options: ChunkOptions, features: FeatureOptions, repairs: Repairs | None = None
) -> Iterator[Chunk]:
    """The file's chunks in order, as the model's features; memory holds one chunk plus a read block."""
    hop = features.hop_length
    core, context = options.frames(options.chunk_seconds, hop), options.frames(options.context_seconds, hop)
    buffer, buffer_start, keep_from, total = np.zeros(0, dtype=np.float32), 0, 0, 0

    def chunk(last: bool) -> Chunk:
        first = max(0, keep_from - context)
        audio = buffer[first * hop - buffer_start :]
        if not last:
            audio = audio[: (keep_from + core + context - first) * hop]
        return Chunk(log_mel(audio, features), first, keep_from, None if last else keep_from + core)

    for block in resampled_blocks(path, repairs):
        buffer = np.concatenate([buffer, block])
        total += len(block)
        while buffer_start + len(buffer) >= (keep_from + core + context) * hop:
            yield chunk(last=False)
            keep_from += core
            drop = max(0, (keep_from - context) * hop - buffer_start)
            buffer, buffer_start = buffer[drop:], buffer_start + drop
    if total == 0:
        raise UserError(f"{path}: no audio")
    yield chunk(last=True)


def kept_rows(chunk: Chunk) -> np.ndarray:
    start = chunk.keep_from - chunk.first
    return chunk.features[start:] if chunk.keep_to is None else chunk.features[start : chunk.keep_to - chunk.first]


MAX_FILLER_RATIO = 4  # filler frames per chunk frame, at most: memory stays a few chunks' worth


def filler(features: np.ndarray, count: int, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Frames that bring ``features`` plus themselves to ``mean`` and ``variance`` per bin.

    Half the frames sit at ``a + d`` and half at ``a - d``: ``a`` sets the sum and ``d``
    the sum of squares. ``count`` doubles until ``d`` is real, up to ``MAX_FILLER_RATIO``
    times the chunk: a chunk far more varied than its file (a burst in near-silence, a
    constant offset) would otherwise need millions of frames. At the cap ``d`` is 0 where
    it cannot be real, and the variance of those bins stays a little above the file's.
    """
    x = features.astype(np.float64)
    limit = max(2, MAX_FILLER_RATIO * len(x) // 2 * 2, count)
    while True:
        total = len(x) + count
        a = (total * mean - x.sum(axis=0)) / count
        second = (total * (variance + mean**2) - (x**2).sum(axis=0)) / count
        if np.all(second >= a**2) or count >= limit:
            d = np.sqrt(np.maximum(second - a**2, 0.0))
            return np.where((np.arange(count) % 2 == 0)[:, None], a + d, a - d)
        count = min(count * 2, limit)


class Transcriber:
    """Runs one model and one decoder over files, a chunk at a time."""

    def __init__(self, model: Model, decoder: Decoder, chunks: ChunkOptions = ChunkOptions()):
        chunks.check_reach(model.card.features)
        self.session = model.session
        self.features = model.card.features  # what training fed the model
        self.decoder = decoder
        self.chunks = chunks

    def log_probs(self, features: np.ndarray) -> np.ndarray:
        rows = features.astype(np.float32)[None]
        log_probs, lengths = self.session.run(None, {"features": rows, "lengths": np.array([len(features)])})
        return log_probs[0, : int(lengths[0])]

    def file_log_probs(self, path: Path, repairs: Repairs | None = None) -> Iterator[np.ndarray]:
        """The file's log-probs in order, a chunk at a time, computed in two passes over the file."""
        rows, total, squares = 0, 0.0, 0.0
        for chunk in chunks_of(path, self.chunks, self.features, repairs):  # pass 1: the file's statistics
            kept = kept_rows(chunk).astype(np.float64)
            rows, total, squares = rows + len(kept), total + kept.sum(axis=0), squares + (kept**2).sum(axis=0)
        if rows < MIN_INPUT_FRAMES:
            raise UserError(
                f"{path}: too short to transcribe ({rows} feature frame; the model needs {MIN_INPUT_FRAMES})"
            )
        mean = total / rows
        variance = np.maximum(squares / rows - mean**2, 0.0)
        for chunk in chunks_of(path, self.chunks, self.features):  # pass 2: the model
            if chunk.first == 0 and chunk.keep_to is None:  # the whole file is one chunk
                yield self.log_probs(chunk.features)
                continue
            # Filler goes after the chunk, or before it for the last chunk, which has no right context.
            extra = filler(chunk.features, max(2, len(chunk.features) // 2 * 2), mean, variance)
            after = chunk.keep_to is not None
            out = self.log_probs(np.concatenate([chunk.features, extra] if after else [extra, chunk.features]))
            start = (0 if after else len(extra) // STRIDE) + (chunk.keep_from - chunk.first) // STRIDE
            if after:
                yield out[start : start + (chunk.keep_to - chunk.keep_from) // STRIDE]
            else:
                yield out[start : len(extra) // STRIDE + output_frames(len(chunk.features))]

    def __call__(self, path: Path) -> Transcript:
        started = time.perf_counter()
        repairs = Repairs()
        stream = self.decoder.stream()
        for log_probs in self.file_log_probs(path, repairs):
            stream.feed(log_probs)
        text = stream.finish()
        seconds = soundfile.info(str(path)).duration
        elapsed = round(time.perf_counter() - started, 4)
        return Transcript(str(path), text, round(seconds, 3), elapsed, repairs.non_finite)
