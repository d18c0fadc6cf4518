"""The share of the machine's peak: the model's exact MACs and the arithmetic of the share."""

import numpy as np
import pytest

from speechquant.ctc import LAYER_NAMES, output_frames
from speechquant.model import PRESETS, Wav2Letter
from speechquant.peak import gemm_gmacs, layer_macs, share_of_peak


def test_the_macs_follow_each_conv_s_output_frames_and_weights(exported):
    macs = layer_macs(exported, 1000)
    model = Wav2Letter(PRESETS["default"])
    conv0 = model.conv0.weight
    assert macs["conv0"] == 500 * conv0.numel()  # kernel 48, stride 2, padding 23: 1000 frames -> 500
    last = getattr(model, f"conv{len(LAYER_NAMES) - 1}").weight
    assert macs[LAYER_NAMES[-1]] == output_frames(1000) * last.numel()
    parameters = sum(getattr(model, f"{name}").weight.numel() for name in LAYER_NAMES)
    assert 495 * parameters < sum(macs.values()) < 505 * parameters  # about 500 output frames per layer


def test_the_share_charges_float_layers_at_the_float_rate_and_the_rest_at_the_int8_rate():
    peak = {"fp32_gmacs": 100.0, "int8_gmacs": 400.0}
    macs = {"conv0": 4_000_000_000, "conv1": 4_000_000_000}  # each 10 ms at the int8 rate, 40 ms at fp32's
    assert share_of_peak(macs, [], 0.040, peak) == pytest.approx(0.5)
    assert share_of_peak(macs, ["conv0", "conv1"], 0.080, peak) == pytest.approx(1.0)
    assert share_of_peak(macs, ["conv0"], 0.100, peak) == pytest.approx(0.5)


@pytest.mark.parametrize("integer", [False, True])
def test_the_gemm_runs_in_the_precision_it_names(integer):
    assert np.isfinite(gemm_gmacs(integer, size=64, rounds=1))
