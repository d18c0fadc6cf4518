"""Structured pruning keeps a dense, narrower network that still computes what the kept channels did."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from speechquant.batching import UtteranceSet
from speechquant.calibration import utterance_inputs
from speechquant.compress import (
    CompressOptions,
    activation_rms,
    channel_importance,
    check_ranks,
    compress,
    distillation_loss,
    factorize,
    filter_norms,
    fine_tune,
    input_moments,
    low_rank,
    prune,
    pruned_widths,
)
from speechquant.ctc import LAYER_NAMES, LAYERS
from speechquant.errors import UserError
from speechquant.export import export, fold_batch_norm
from speechquant.model import Wav2Letter, parameter_count
from speechquant.params import build
from speechquant.peak import conv_weight_shapes, macs_per_output_frame
from speechquant.quantize import QuantOptions, quantize
from speechquant.verify import report


def test_pruning_keeps_the_most_important_channels_and_shrinks_every_hidden_layer(trained_like_model):
    folded = fold_batch_norm(trained_like_model)
    pruned, kept = prune(folded, 0.5, filter_norms(folded))
    assert (pruned.config.hidden_channels, pruned.config.wide_channels) == (80, 320)
    assert parameter_count(pruned) < 0.3 * parameter_count(folded)  # middle layers shrink by 0.5 x 0.5
    score = channel_importance(folded.conv3.weight.detach().flatten(1).norm(dim=1), folded.conv4.weight.detach())
    assert set(kept["conv3"]) == set(torch.topk(score, 80).indices.tolist())
    assert kept["conv10"] == list(range(folded.conv10.out_channels))  # every class stays
    np.testing.assert_array_equal(
        pruned.conv4.weight.detach(), folded.conv4.weight.detach()[kept["conv4"]][:, kept["conv3"]]
    )


def test_the_activation_method_drops_a_channel_relu_silences_whatever_its_filter_norm(trained_like_model, features):
    folded = fold_batch_norm(trained_like_model)
    with torch.no_grad():  # conv3's channel 5 reads non-negative inputs with large negative weights: always off
        folded.conv3.weight[5] = -1.0
        folded.conv3.bias[5] = -1.0
    by_magnitude = prune(folded, 0.5, filter_norms(folded))[1]["conv3"]
    sizes = activation_rms(folded, UtteranceSet(features), batch_frames=2000, seed=0)
    by_activation = prune(folded, 0.5, sizes)[1]["conv3"]
    assert sizes[3][5] == 0 and 5 in by_magnitude and 5 not in by_activation
    assert [len(size) for size in sizes] == [160] * 8 + [640, 640]


def test_a_ratio_of_one_prunes_nothing(trained_like_model, features):
    folded = fold_batch_norm(trained_like_model)
    pruned, _ = prune(folded, 1.0, filter_norms(folded))
    batch = torch.from_numpy(np.asarray(features[0], dtype=np.float32))[None]
    lengths = torch.tensor([batch.shape[1]])
    with torch.no_grad():
        assert torch.allclose(pruned(batch, lengths)[0], folded(batch, lengths)[0], atol=1e-5)


def test_an_impossible_ratio_or_an_unknown_method_is_one_clear_error(trained_like_model):
    with pytest.raises(UserError, match="no channels"):
        pruned_widths(fold_batch_norm(trained_like_model), 0.001)
    with pytest.raises(UserError, match=r"compress\.method"):
        build(CompressOptions, {"method": "lottery"}, "compress")
    with pytest.raises(UserError, match=r"compress\.ratio"):
        build(CompressOptions, {"ratio": 1.5}, "compress")


def test_distillation_is_zero_for_the_teachers_own_output_and_ignores_padding():
    teacher = torch.log_softmax(torch.randn(2, 5, 35), dim=-1)
    assert distillation_loss(teacher, teacher, torch.tensor([5, 3])).abs() < 1e-5
    student = teacher.clone()
    student[1, 4] = torch.log_softmax(torch.randn(35), dim=-1)  # a padded frame of the second utterance
    assert distillation_loss(student, teacher, torch.tensor([5, 3])).abs() < 1e-5


def test_fine_tuning_students_together_matches_fine_tuning_each_alone(trained_like_model, features):
    folded = fold_batch_norm(trained_like_model)
    pruned, _ = prune(folded, 0.5, filter_norms(folded))
    data = UtteranceSet(features)
    options = CompressOptions(steps=3, batch_frames=2000, precision="fp32", distill_weight=0.5, learning_rate=1e-3)
    alone = copy.deepcopy(pruned)
    together = fine_tune({"pruned": pruned, "control": copy.deepcopy(folded)}, folded, data, data, options)
    fine_tune({"pruned": alone}, folded, data, data, options)
    assert together["pruned"]["parameters"] == parameter_count(pruned) and together["pruned"]["fine_tune_seconds"] > 0
    assert together["pruned"]["dev_loss_after"] != together["pruned"]["dev_loss_before"]  # it learned
    for mine, theirs in zip(pruned.parameters(), alone.parameters(), strict=True):
        assert torch.equal(mine, theirs)  # the shared loop changes nothing a student's own loop would not
    assert next(pruned.parameters()).device.type == "cpu"  # ready for export wherever it was tuned


def test_a_student_taught_by_the_control_learns_from_it_as_it_trains(trained_like_model, features):
    folded = fold_batch_norm(trained_like_model)
    pruned, _ = prune(folded, 0.5, filter_norms(folded))
    data = UtteranceSet(features)

    def tuned(steps: int, taught_by: str | None, control_first: bool) -> tuple[Wav2Letter, Wav2Letter]:
        options = CompressOptions(steps=steps, batch_frames=2000, precision="fp32", learning_rate=1e-3)
        student, control = copy.deepcopy(pruned), copy.deepcopy(folded)
        students = {"control": control, "pruned": student} if control_first else {"pruned": student, "control": control}
        fine_tune(students, folded, data, data, options, taught_by)
        return student, control

    def same(one: Wav2Letter, other: Wav2Letter) -> bool:
        return all(torch.equal(a, b) for a, b in zip(one.parameters(), other.parameters(), strict=True))

    # At the first step the control is still the trained model, so it teaches exactly what the trained model does.
    assert same(tuned(1, "control", False)[0], tuned(1, None, False)[0])
    online, control = tuned(3, "control", False)
    offline, control_offline = tuned(3, None, False)
    assert not same(online, offline)  # later steps learn from the control's new outputs
    assert same(control, control_offline)  # the control itself still learns from the trained model
    assert same(online, tuned(3, "control", True)[0])  # the control steps first whatever the students' order
    with pytest.raises(ValueError, match="taught_by names 'teacher'"):
        fine_tune({"pruned": pruned}, folded, data, data, CompressOptions(steps=1), "teacher")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no GPU")
def test_compress_device_cuda_without_a_gpu_is_one_error_naming_the_key(trained_like_model, features):
    folded = fold_batch_norm(trained_like_model)
    data = UtteranceSet(features)
    with pytest.raises(UserError, match=r"compress\.device is cuda but no CUDA device"):
        fine_tune({"test": fold_batch_norm(trained_like_model)}, folded, data, data, CompressOptions(device="cuda"))


def test_a_pruned_export_has_its_own_weight_shapes_and_fewer_macs(trained_like_model, exported, tmp_path):
    folded = fold_batch_norm(trained_like_model)
    pruned, _ = prune(folded, 0.5, filter_norms(folded))
    path = tmp_path / "pruned.onnx"
    export(pruned, path)
    assert conv_weight_shapes(path)["conv8"] == [(320, 80, 32)]
    assert macs_per_output_frame(path) < 0.3 * macs_per_output_frame(exported)


def windows_of(layer: str, model, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The input that ``layer`` of ``model`` reads for one batch."""
    seen = {}

    def conv(index, x):
        seen[LAYER_NAMES[index]] = x
        return getattr(model, LAYER_NAMES[index])(x)

    with torch.no_grad():
        model.run_layers(batch, lengths, conv)
    return seen[layer]


def test_a_full_rank_factorization_computes_the_layer_itself_and_a_low_one_fits_the_data_better_than_svd(
    trained_like_model, features
):
    folded = fold_batch_norm(trained_like_model)
    data = UtteranceSet(features)
    moments = input_moments(folded, data, batch_frames=2000, seed=0, layers=["conv8"])
    batch = data.collate(list(range(4)))
    inputs = windows_of("conv8", folded, batch.features, batch.lengths)
    with torch.no_grad():
        exact = folded.conv8(inputs)
        full = low_rank(folded.conv8, 640, moments["conv8"], LAYERS[8])
        assert torch.allclose(full(inputs), exact, atol=1e-3 * exact.abs().max())
        fitted = low_rank(folded.conv8, 16, moments["conv8"], LAYERS[8])(inputs)
        u, s, v = torch.linalg.svd(folded.conv8.weight.flatten(1), full_matrices=False)
        plain = (u[:, :16] * s[:16]) @ v[:16]  # the weights' own best rank-16 copy, blind to the data
        svd = torch.nn.functional.conv1d(inputs, plain.reshape(640, 160, 32), folded.conv8.bias, padding=16)
    assert (fitted - exact).square().sum() < (svd - exact).square().sum()


def test_low_rank_layers_export_as_two_int8_convs_each_that_reports_count_as_one_layer(
    trained_like_model, features, exported, tmp_path
):
    folded = fold_batch_norm(trained_like_model)
    data = UtteranceSet(features)
    ranks = {"conv0": 16, "conv8": 24, "conv9": 32}
    factorized = factorize(folded, ranks, input_moments(folded, data, 2000, 0, ["conv0", "conv8", "conv9"]))
    path, quantized = tmp_path / "pruned_fp32.onnx", tmp_path / "pruned_int8.onnx"
    export(factorized, path)
    assert conv_weight_shapes(path)["conv8"] == [(24, 160, 32), (640, 24, 1)]
    inputs = utterance_inputs(features, 2, seed=0)
    assert report("pruned_fp32", path, path, [], inputs)["parameters"] == parameter_count(factorized)
    options = build(QuantOptions, {"calibration": {"method": "minmax", "utterances": 4, "frames": 100}}, "quant")
    _, made = quantize("pruned_int8", path, quantized, options, features)
    assert set(made["equalized"]) == set(ranks)  # each low-rank pair balanced before int8 (equalize.py)
    metrics = report("pruned_int8", quantized, path, [], inputs)
    assert metrics["conv_kernels"] == {"QLinearConv": 11} and metrics["float_layers"] == []
    assert metrics["macs_per_output_frame"] < 0.35 * macs_per_output_frame(exported)


def test_a_rank_that_saves_nothing_or_an_unknown_layer_is_one_error_naming_the_key(trained_like_model):
    config = trained_like_model.config
    check_ranks(config, {"conv8": 568, "conv0": 147})  # the largest ranks that still hold fewer weights
    with pytest.raises(UserError, match=r"compress\.ranks\.conv8 is 569; valid: 1 to 568"):
        check_ranks(config, {"conv8": 569})
    with pytest.raises(UserError, match=r"compress\.ranks names 'conv11'"):
        check_ranks(config, {"conv11": 4})
    with pytest.raises(UserError, match=r"compress\.ranks\.conv8 is 0"):
        build(CompressOptions, {"ranks": {"conv8": 0}}, "compress")
    narrow = dataclasses.replace(config, hidden_channels=16)  # ranks are checked against the pruned widths
    with pytest.raises(UserError, match=r"compress\.ranks\.conv0 is 64; valid: 1 to 15"):
        check_ranks(narrow, {"conv0": 64})


def test_ranks_null_compresses_by_channel_pruning_alone(trained_like_model, features):
    options = build(CompressOptions, {"ranks": None, "ratio": 0.5, "steps": 1, "batch_frames": 2000}, "compress")
    data = UtteranceSet(features)
    student, _, measured = compress(trained_like_model, data, data, dataclasses.replace(options, precision="fp32"))
    assert measured["ranks"] == {} and measured["widths"] == {"hidden": 80, "wide": 320}
    assert all(isinstance(getattr(student, layer), torch.nn.Conv1d) for layer in LAYER_NAMES)
