import numpy as np

from speechquant.batching import SpecAugmentOptions, UtteranceSet, spec_augment
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
