import pytest
import torch

from speechquant import ctc
from speechquant.export import fold_batch_norm
from speechquant.model import LAYER_NAMES, PRESETS, ModelOptions, Wav2Letter, output_lengths, parameter_count


def test_paper_preset_is_exactly_the_study_network():
    model = Wav2Letter(PRESETS["paper"])
    assert parameter_count(model) == 23_618_535
    convs = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv1d)]
    assert convs == [f"conv{i}" for i in range(11)] == list(LAYER_NAMES)
    assert (model.conv0.in_channels, model.conv0.out_channels, model.conv0.kernel_size, model.conv0.stride) == (
        40,
        250,
        (48,),
        (2,),
    )
    assert (model.conv8.out_channels, model.conv8.kernel_size, model.conv10.out_channels) == (2000, (32,), 35)


@pytest.mark.parametrize(("frames", "expected"), [(100, 51), (101, 51), (1000, 501), (7, 4)])
def test_output_length_for_an_input_length(frames, expected):
    model = Wav2Letter(PRESETS["default"]).eval()
    log_probs, lengths = model(torch.randn(1, frames, 40), torch.tensor([frames]))
    assert log_probs.shape == (1, expected, 35)
    assert int(lengths[0]) == expected == ctc.output_frames(frames) == int(output_lengths(torch.tensor([frames]))[0])
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, expected), atol=1e-5)


@pytest.mark.parametrize("normalization", ["utterance", "global"])
def test_padding_never_changes_an_utterance_output(normalization):
    model = Wav2Letter(ModelOptions(preset="default", normalization=normalization).config()).eval()
    features = torch.randn(3, 300, 40) * 4 - 6
    lengths = torch.tensor([300, 123, 40])
    batched, out_lengths = model(features, lengths)
    for row in range(3):
        alone, _ = model(features[row : row + 1, : lengths[row]], lengths[row : row + 1])
        torch.testing.assert_close(batched[row, : out_lengths[row]], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fold", [False, True])
def test_leaving_padding_before_pointwise_convs_changes_no_log_prob(fold):
    """The export's graph skips two masks; every output frame, padded ones too, must stay the same."""
    torch.manual_seed(0)
    model = Wav2Letter(PRESETS["default"])
    with torch.no_grad():  # batch norm statistics that are not the identity
        for index in range(10):
            norm = getattr(model, f"norm{index}")
            norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2), norm.bias.uniform_(-1, 1)
    model = fold_batch_norm(model) if fold else model.eval()
    features, lengths = torch.randn(3, 300, 40), torch.tensor([300, 123, 40])
    with torch.no_grad():
        every, every_lengths = model(features, lengths)
        fewer, fewer_lengths = model(features, lengths, zero_all_padding=False)
    assert torch.equal(every, fewer) and torch.equal(every_lengths, fewer_lengths)


def test_default_preset_is_narrower_with_batch_norm():
    model = Wav2Letter(PRESETS["default"])
    assert parameter_count(model) < parameter_count(Wav2Letter(PRESETS["paper"])) / 4
    assert isinstance(model.norm0, torch.nn.BatchNorm1d) and not hasattr(model, "norm10")


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="it must be one of paper, default"):
        ModelOptions(preset="huge")
