import numpy as np
import pytest

from speechquant.ctc import LAYER_NAMES
from speechquant.sensitivity import AutoOptions, Score, cost_key, layer_costs, mean_kl, search

COSTS = {name: {"parameters": 100 + i, "macs_per_frame": 1000.0 - i} for i, name in enumerate(LAYER_NAMES)}


def fake_scorer(harm: dict[str, float], calls: list):
    """CER 0.10 plus the harm of every int8 layer; keeping a layer in float removes its harm."""

    def score(float_layers: tuple[str, ...]) -> Score:
        calls.append(float_layers)
        return Score(0.10 + sum(h for layer, h in harm.items() if layer not in float_layers), 0.0)

    return score


def test_nothing_stays_float_when_every_layer_int8_meets_the_budget():
    chosen, trace = search(fake_scorer({"conv0": 0.0005}, []), 0.10, COSTS, AutoOptions(max_cer_increase=0.01))
    assert chosen == () and trace[0]["meets"]


def test_the_cheapest_single_layer_that_meets_the_budget_is_kept_in_float():
    harm = {"conv0": 0.003, "conv5": 0.0004, "conv9": 0.0003}
    chosen, _ = search(fake_scorer(harm, []), 0.10, COSTS, AutoOptions(max_cer_increase=0.01))
    assert chosen == ("conv0",)  # only conv0 in float brings the CER within 1%


def test_pairs_are_searched_when_no_single_layer_suffices_and_the_cheapest_pair_wins():
    harm = {"conv0": 0.002, "conv3": 0.002, "conv7": 0.002}
    calls = []
    chosen, trace = search(fake_scorer(harm, calls), 0.10, COSTS, AutoOptions(max_cer_increase=0.025))
    # Any two of the three leave 0.002 of harm (2%) within 2.5%; conv3+conv7 costs fewest MACs.
    assert chosen == ("conv3", "conv7")
    assert cost_key(("conv3", "conv7"), COSTS) < cost_key(("conv0", "conv3"), COSTS)
    assert trace[-1]["float_layers"] == ["conv3", "conv7"] and trace[-1]["meets"]


def test_known_scores_are_not_measured_again_and_an_impossible_budget_gives_none():
    calls = []
    known = {(): Score(0.2, 0.0)}
    chosen, _ = search(fake_scorer({"conv0": 0.1}, calls), 0.10, COSTS, AutoOptions(max_float_layers=0), known)
    assert chosen is None and calls == []


def test_layer_costs_follow_the_weights_and_the_stride(exported):
    costs = layer_costs(exported)
    assert set(costs) == set(LAYER_NAMES)
    conv0 = costs["conv0"]  # 40 -> 160 channels, kernel 48, stride 2
    assert conv0["parameters"] == 160 * 40 * 48 + 160
    assert conv0["macs_per_frame"] == pytest.approx(160 * 40 * 48 / 2)


def test_kl_is_zero_for_identical_outputs_and_positive_otherwise():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 35))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert mean_kl([log_probs], [log_probs]) == 0.0
    shifted = np.roll(log_probs, 1, axis=1)
    assert mean_kl([log_probs], [shifted]) > 0.1
