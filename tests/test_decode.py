import itertools

import numpy as np
import pytest

from speechquant.ctc import greedy
from speechquant.decode import (
    LOOK_BACK_FRAMES,
    SETTLE_EVERY_FRAMES,
    TIE_BREAK_NATS,
    Decoder,
    DecoderOptions,
    tie_breaker,
)
from speechquant.text import BLANK_ID, NUM_CLASSES, detokenize, tokenize


def log_probs(frames: list[dict[str, float]]) -> np.ndarray:
    """Per-frame distributions over named symbols ('<' is blank); the rest share what is left."""
    table = np.full((len(frames), NUM_CLASSES), 1e-6)
    for row, probabilities in enumerate(frames):
        for symbol, p in probabilities.items():
            table[row, 0 if symbol == "<" else tokenize(symbol)[0]] = p
    return np.log(table / table.sum(axis=1, keepdims=True)).astype(np.float32)


def test_greedy_collapses_repeats_and_drops_blanks():
    frames = [{"h": 0.9}, {"h": 0.9}, {"<": 0.9}, {"i": 0.9}, {"<": 0.9}, {"i": 0.9}]
    assert greedy(log_probs(frames), 6) == "hii"
    assert greedy(log_probs(frames), 2) == "h"  # only the utterance's own frames count


def test_beam_search_sums_paths_where_greedy_takes_the_single_best():
    # Best path is blank-blank (0.36), but "a" has 0.4*0.6 + 0.6*0.4 + 0.4*0.4 = 0.64 in total.
    frames = [{"<": 0.6, "a": 0.4}, {"<": 0.6, "a": 0.4}]
    assert greedy(log_probs(frames), 2) == ""
    assert Decoder(DecoderOptions(method="beam", beam_size=20))(log_probs(frames), 2) == "a"


def test_beam_decodes_a_clear_utterance_with_spaces():
    frames = [{c: 0.95} if c != "_" else {"<": 0.95} for c in "he_y_ you"]
    assert Decoder(DecoderOptions())(log_probs(frames), len(frames)) == "hey you"


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="greedy, beam"):
        DecoderOptions(method="viterbi")


def test_exact_ties_decode_the_same_way_every_time():
    # Quantized models give classes exactly equal log-probs; flashlight alone breaks such
    # ties by memory address, so repeated decodes of int8 outputs used to disagree.
    frames = log_probs([{"a": 0.3, "o": 0.3, "e": 0.3} if i % 2 else {"<": 0.9} for i in range(40)])
    decoder = Decoder(DecoderOptions())
    first = decoder(frames, len(frames))
    assert all(decoder(frames, len(frames)) == first for _ in range(20))


@pytest.mark.parametrize("log_prob", [-0.7188216, -3.1, -15.9, -100.0])
def test_tied_classes_stay_apart_after_the_tie_breaking_offsets_in_float32(log_prob):
    """Two classes tied at -0.7188216 in a bf16 model's output were still tied after offsets drawn independently
    (0.00090643 and 0.00090642: closer than float32 resolves there), and that utterance decoded differently
    depending on what the process had decoded before. Every frame's offsets must leave all classes apart."""
    offsets = tie_breaker(0, 4096, NUM_CLASSES)
    shifted = np.float32(log_prob) + offsets
    assert shifted.dtype == np.float32
    assert all(len(np.unique(row)) == NUM_CLASSES for row in shifted)
    assert offsets.min() >= 0 and offsets.max() < TIE_BREAK_NATS


def _whole_decode(decoder: Decoder, log_probs: np.ndarray) -> str:
    """flashlight's one-call decode of every frame, never pruned."""
    emissions = np.ascontiguousarray(log_probs + tie_breaker(0, *log_probs.shape))
    best = decoder._new_search().decode(emissions.ctypes.data, *emissions.shape)[0]
    return detokenize([t for t, _ in itertools.groupby(best.tokens) if t not in (BLANK_ID, -1)]).strip()


@pytest.mark.parametrize("spread", [0.5, 2.0, 5.0])
def test_a_long_stream_decodes_like_one_unpruned_search(spread):
    """Two minutes of output frames fed in pieces: settled as it goes, yet the same text as one search."""
    logits = np.random.default_rng(1).normal(0.0, spread, (6000, NUM_CLASSES))
    logits[:, BLANK_ID] += spread
    frames = (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)
    decoder = Decoder(DecoderOptions())
    stream = decoder.stream()
    for start in range(0, len(frames), 700):
        stream.feed(frames[start : start + 700])
    assert len(stream.tokens) > 4000  # most frames were settled and dropped from the search before the end
    assert stream.undecided <= LOOK_BACK_FRAMES + 100 + SETTLE_EVERY_FRAMES
    streamed = stream.finish()
    assert streamed == _whole_decode(decoder, frames)
    greedy_stream = Decoder(DecoderOptions(method="greedy")).stream()
    for start in range(0, len(frames), 333):
        greedy_stream.feed(frames[start : start + 333])
    assert greedy_stream.finish() == greedy(frames, len(frames))
