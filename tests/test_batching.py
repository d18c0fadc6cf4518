import numpy as np

from speechquant.batching import (
    SpecAugmentOptions,
    TempoOptions,
    UtteranceSet,
    change_tempo,
    spec_augment,
    tempo_factor,
)
from speechquant.store import Store, StoreWriter, Utterance


def test_frequency_masks_span_bins_and_time_masks_span_frames():
    features = np.random.default_rng(0).standard_normal((200, 40)).astype(np.float32)
    mean = features.mean(axis=0)
    only_frequency = spec_augment(features, SpecAugmentOptions(2, 8, 0, 0), np.random.default_rng(1))
    changed = ~np.isclose(only_frequency, features)
    assert changed.any()
    changed_bins = changed.any(axis=0)
    assert changed[:, changed_bins].all()  # every frame of a masked bin
    np.testing.assert_allclose(
        only_frequency[:, changed_bins], np.broadcast_to(mean[changed_bins], (200, changed_bins.sum()))
    )
    assert changed_bins.sum() <= 16

    only_time = spec_augment(features, SpecAugmentOptions(0, 0, 2, 40), np.random.default_rng(1))
    changed = ~np.isclose(only_time, features)
    changed_frames = changed.any(axis=1)
    assert changed_frames.any() and changed[changed_frames].all()  # every bin of a masked frame
    assert changed_frames.sum() <= 80


def make_set(tmp_path, frames: list[int]) -> UtteranceSet:
    with StoreWriter(tmp_path / "s", np.float16, (40,), {"kind": "log_mel"}) as writer:
        for index, n in enumerate(frames):
            writer.append(Utterance(f"u{index}", "abc", 0), np.zeros((n, 40), np.float16))
    return UtteranceSet(Store(tmp_path / "s"))


def test_batches_hold_every_utterance_once_within_the_frame_budget(tmp_path):
    frames = np.random.default_rng(0).integers(50, 800, 300).tolist()
    data = make_set(tmp_path, frames)
    batches = data.batches(4000, seed=0, epoch=3, shuffle=True)
    assert sorted(p for b in batches for p in b) == list(range(300))
    assert all(len(b) == 1 or max(frames[p] for p in b) * len(b) <= 4000 for b in batches)
    assert batches == data.batches(4000, seed=0, epoch=3, shuffle=True)
    assert batches != data.batches(4000, seed=0, epoch=4, shuffle=True)


def test_collate_pads_with_zeros_and_concatenates_labels(tmp_path):
    data = make_set(tmp_path, [5, 9])
    batch = data.collate([0, 1])
    assert batch.features.shape == (2, 9, 40)
    assert batch.lengths.tolist() == [5, 9]
    assert batch.targets.tolist() == [1, 2, 3, 1, 2, 3] and batch.target_lengths.tolist() == [3, 3]


def test_a_tempo_change_keeps_each_frames_spectrum_and_changes_only_the_length():
    ramp = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 40), np.float32)
    faster = change_tempo(ramp, 0.6)
    assert faster.shape == (60, 40)
    assert faster[0, 0] == 0 and faster[-1, 0] == 99  # first and last sound kept, in between sooner
    assert np.all(np.diff(faster[:, 0]) > 0) and np.allclose(faster, faster[:, :1])  # no bin mixed into another
    np.testing.assert_array_equal(change_tempo(ramp, 1.0), ramp)
    assert change_tempo(ramp, 1.5).shape == (150, 40)


def test_tempo_factors_stay_in_range_and_never_leave_ctc_too_few_frames():
    rng = np.random.default_rng(0)
    options = TempoOptions(probability=0.5, factor=(0.6, 1.0))
    factors = np.array([tempo_factor(options, 1000, 10, rng) for _ in range(2000)])
    changed = factors[factors != 1.0]
    assert 0.45 < len(changed) / len(factors) < 0.55 and changed.min() >= 0.6 and changed.max() <= 1.0
    tight = [tempo_factor(TempoOptions(1.0, (0.3, 0.3)), 100, 30, rng) for _ in range(20)]
    assert all(factor * 100 >= 2.6 * 30 - 1e-9 for factor in tight)  # 78 input frames for 30 labels, at least
    assert tempo_factor(TempoOptions(1.0, (0.5, 0.5)), 100, 60, rng) == 1.0  # already tight: left as it is


def test_collate_with_tempo_off_draws_exactly_what_it_drew_before_tempo_existed(tmp_path):
    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "s", np.float16, (40,), {"kind": "log_mel"}) as writer:
        for index, n in enumerate([120, 150, 90]):
            writer.append(Utterance(f"u{index}", "abc", 0), rng.standard_normal((n, 40)).astype(np.float16))
    data = UtteranceSet(Store(tmp_path / "s"))
    features = [np.asarray(data.store[i], dtype=np.float32) for i in range(3)]
    masks = SpecAugmentOptions(1, 6, 1, 20)
    rng = np.random.default_rng(7)
    before = [spec_augment(f, masks, rng) for f in features]  # what collate did without tempo
    batch = data.collate([0, 1, 2], masks, np.random.default_rng(7), TempoOptions(probability=0.0))
    for row, expected, original in zip(batch.features.numpy(), before, features, strict=True):
        assert not np.array_equal(expected, original)  # masks were drawn
        np.testing.assert_array_equal(row[: len(expected)], expected)


def test_collate_shortens_the_utterances_it_speeds_up_and_reports_their_new_lengths(tmp_path):
    data = make_set(tmp_path, [200] * 40)
    batch = data.collate(list(range(40)), SpecAugmentOptions(0, 0, 0, 0), np.random.default_rng(3), TempoOptions(1.0))
    lengths = batch.lengths.numpy()
    assert lengths.min() >= 120 and lengths.max() <= 200 and len(set(lengths.tolist())) > 10
    assert batch.features.shape[1] == lengths.max()
