"""Balancing low-rank layers' middle channels before static int8: the float model must not change."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from speechquant.batching import UtteranceSet
from speechquant.calibration import utterance_inputs
from speechquant.compress import factorize, input_moments
from speechquant.equalize import equalize, low_rank_pairs, middle_ranges
from speechquant.export import export, fold_batch_norm
from speechquant.params import build
from speechquant.quantize import QuantOptions, quantize


@pytest.fixture(scope="module")
def factorized_onnx(trained_like_model, features, tmp_path_factory):
    folded = fold_batch_norm(trained_like_model)
    ranks = {"conv0": 16, "conv8": 24}
    model = factorize(folded, ranks, input_moments(folded, UtteranceSet(features), 2000, 0, list(ranks)))
    path = tmp_path_factory.mktemp("equalize") / "pruned_fp32.onnx"
    export(model, path)
    return path


def run(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, feed)[0] for feed in inputs]


def test_equalizing_leaves_the_float_model_as_it_was_and_narrows_the_middle_ranges(factorized_onnx, features, tmp_path):
    inputs = utterance_inputs(features, 3, seed=0)
    balanced = tmp_path / "balanced.onnx"
    spreads = equalize(onnx.load(str(factorized_onnx)), balanced, inputs, {"conv0", "conv8"})
    assert set(spreads) == {"conv0", "conv8"}
    for spread in spreads.values():
        assert spread["middle_range_spread_after"] < spread["middle_range_spread_before"]
    for before, after in zip(run(factorized_onnx, inputs), run(balanced, inputs), strict=True):
        np.testing.assert_allclose(after, before, atol=1e-4)


def test_each_middle_channel_ends_with_its_output_and_weight_ranges_in_the_same_proportion(
    factorized_onnx, features, tmp_path
):
    """Cross-layer equalization's balance: no channel's activation or mix weights dominate the scales."""
    inputs = utterance_inputs(features, 3, seed=0)
    balanced = tmp_path / "balanced.onnx"
    equalize(onnx.load(str(factorized_onnx)), balanced, inputs, {"conv0", "conv8"})
    model = onnx.load(str(balanced))
    pairs = low_rank_pairs(model.graph)
    ranges = middle_ranges(model, pairs, inputs)
    weights = {initializer.name: numpy_helper.to_array(initializer) for initializer in model.graph.initializer}
    for taps, mix in pairs:
        proportion = ranges[taps.name] / np.abs(weights[mix.input[1]]).max(axis=(0, 2))
        assert proportion.max() / proportion.min() == pytest.approx(1.0, abs=1e-3)


def test_only_the_layers_to_be_quantized_are_equalized(factorized_onnx, features, tmp_path):
    balanced = tmp_path / "balanced.onnx"
    spreads = equalize(onnx.load(str(factorized_onnx)), balanced, utterance_inputs(features, 2, seed=0), {"conv8"})
    assert set(spreads) == {"conv8"}

    def weights(path, layer):
        return {
            i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer if i.name.startswith(layer)
        }

    before, after = weights(factorized_onnx, "conv0."), weights(balanced, "conv0.")
    assert before and all(np.array_equal(after[name], values) for name, values in before.items())
    assert not np.array_equal(
        weights(balanced, "conv8.")["conv8.mix.weight"], weights(factorized_onnx, "conv8.")["conv8.mix.weight"]
    )


def test_a_model_without_low_rank_layers_is_left_to_quantize_as_it_is(exported, features, tmp_path):
    target = tmp_path / "balanced.onnx"
    model = onnx.load(str(exported))
    assert equalize(model, target, utterance_inputs(features, 1, seed=0), {"conv0", "conv8"}) == {}
    assert not target.exists() and model.SerializeToString() == onnx.load(str(exported)).SerializeToString()


def test_quantize_without_balance_makes_the_int8_model_of_the_unbalanced_float_one(factorized_onnx, features, tmp_path):
    """What ``tools/equalize_effect.py`` compares the stage's model with: the same recipe, the balancing skipped."""
    options = build(QuantOptions, {"calibration": {"method": "minmax", "utterances": 4, "frames": 100}}, "quant")
    balanced, unbalanced = tmp_path / "balanced.onnx", tmp_path / "unbalanced.onnx"
    _, made = quantize("pruned_int8", factorized_onnx, balanced, options, features)
    _, skipped = quantize("pruned_int8", factorized_onnx, unbalanced, options, features, balance=False)
    assert set(made["equalized"]) == {"conv0", "conv8"} and "equalized" not in skipped

    def dequantized_taps(path):
        """conv8's taps weights as the int8 model multiplies them (per output channel scales)."""
        weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
        quantized, scale = weights["conv8.taps.weight_quantized"], weights["conv8.taps.weight_scale"]
        return quantized.astype(np.float64) * scale[:, None, None]

    float_taps = numpy_helper.to_array(
        next(i for i in onnx.load(str(factorized_onnx)).graph.initializer if i.name == "conv8.taps.weight")
    )
    step = np.abs(float_taps).max(axis=(1, 2))[:, None, None] / 127  # one int8 level per output channel
    assert np.all(np.abs(dequantized_taps(unbalanced) - float_taps) <= step)  # the float weights, rounded
    assert not np.all(np.abs(dequantized_taps(balanced) - float_taps) <= step)  # rescaled first
