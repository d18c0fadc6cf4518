import numpy as np
import pytest

from speechquant.compare import Scored, examples, paired_bootstrap
from speechquant.report.markdown import describe_difference


def scored(edits: list[int], lengths: list[int]) -> Scored:
    ids = [f"u{i}" for i in range(len(edits))]
    references = ["x" * n for n in lengths]
    return Scored(ids, references, references, np.array(edits), np.array(lengths))


def test_a_variant_identical_to_the_reference_differs_by_exactly_zero():
    reference = scored([1, 5, 0, 3] * 25, [20, 40, 10, 30] * 25)
    result = paired_bootstrap(reference, reference, samples=500, seed=0)
    assert result["cer_difference"] == result["ci95_low"] == result["ci95_high"] == 0.0


def test_a_consistently_worse_variant_has_an_interval_above_zero():
    rng = np.random.default_rng(1)
    lengths = rng.integers(20, 60, 200)
    base = rng.integers(0, 5, 200)
    result = paired_bootstrap(scored(list(base + 1), list(lengths)), scored(list(base), list(lengths)), 1000, 0)
    assert 0 < result["ci95_low"] < result["cer_difference"] < result["ci95_high"]
    assert result["cer_difference"] == pytest.approx(200 / lengths.sum(), abs=1e-6)


def test_pairing_narrows_the_interval_below_the_spread_of_either_variant():
    # Utterance difficulty varies a lot, the variants differ a little: a paired interval
    # must see through the first to the second.
    rng = np.random.default_rng(2)
    lengths = np.full(300, 50)
    base = rng.integers(0, 25, 300)
    worse = base + (rng.random(300) < 0.3)
    result = paired_bootstrap(scored(list(worse), list(lengths)), scored(list(base), list(lengths)), 1000, 0)
    assert result["ci95_low"] > 0


def test_scoring_different_utterances_is_refused():
    with pytest.raises(ValueError, match="same utterances"):
        paired_bootstrap(scored([1], [5]), scored([1, 2], [5, 5]), 10, 0)


def test_examples_are_the_best_typical_and_worst_utterances():
    picked = examples(scored([0, 0, 3, 9, 2], [10, 30, 30, 10, 20]))
    assert picked["best"]["id"] == "u1"  # a perfect transcript, and the longer one
    assert picked["worst"]["id"] == "u3"
    assert picked["typical"]["id"] == "u2"  # 0.1 per character against 0.14 overall, longer than u4


def test_a_difference_whose_interval_holds_zero_is_called_no_measurable_change():
    rng = np.random.default_rng(3)
    lengths = np.full(200, 40)
    base = rng.integers(0, 6, 200)
    noisy = base + rng.choice([-1, 0, 1], 200) * (base > 0)  # as many utterances better as worse
    same = paired_bootstrap(scored(list(noisy), list(lengths)), scored(list(base), list(lengths)), 1000, 0)
    assert same["ci95_low"] < 0 < same["ci95_high"] and not same["measurable"]
    assert describe_difference(same).endswith(": no measurable change")
    worse = paired_bootstrap(scored(list(base + 1), list(lengths)), scored(list(base), list(lengths)), 1000, 0)
    assert worse["measurable"] and describe_difference(worse).endswith(": worse")
    assert describe_difference(worse).startswith(f"{worse['relative_difference']:+.2%} (")


def _write_scores(folder, split, rows):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["id,frames,edits,ctc_loss,reference,hypothesis"]
    lines += [f"{uid},100,{edits},1.0,abcdefghij,x" for uid, edits in rows]
    (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")


def test_compare_scores_pairs_two_runs_on_the_same_utterances_and_refuses_different_ones(tmp_path):
    from compare_scores import compare

    old = [(f"u{i}", 3) for i in range(40)]
    _write_scores(tmp_path / "old", "test", old)
    _write_scores(tmp_path / "new", "test", [(uid, 1) for uid, _ in old])  # every utterance better
    _write_scores(tmp_path / "new", "dev", old)  # a split only one run has is skipped
    result = compare(tmp_path / "old", tmp_path / "new")
    assert list(result) == ["test"]
    assert result["test"]["reference_cer"] == 0.3 and result["test"]["candidate_cer"] == 0.1
    assert result["test"]["measurable"] and result["test"]["relative_difference"] == -0.6667
    _write_scores(tmp_path / "other", "test", [(f"v{i}", 3) for i in range(40)])
    with pytest.raises(SystemExit, match="test: the folders score different utterances"):
        compare(tmp_path / "old", tmp_path / "other")
