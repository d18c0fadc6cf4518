import numpy as np
import pytest
import torch

from speechquant.ctc_loss import ctc_loss


@pytest.mark.parametrize(("frames", "label"), [(30, [3, 5, 5, 9]), (12, [1]), (8, [2, 2, 2]), (20, [])])
def test_matches_torch_ctc_loss(frames, label):
    log_probs = torch.randn(frames, 35).log_softmax(-1)
    expected = torch.nn.functional.ctc_loss(
        log_probs[:, None, :],
        torch.tensor([label], dtype=torch.long) if label else torch.zeros(1, 0, dtype=torch.long),
        torch.tensor([frames]),
        torch.tensor([len(label)]),
        blank=0,
        reduction="sum",
    )
    assert ctc_loss(log_probs.numpy().astype(np.float64), label) == pytest.approx(float(expected), rel=1e-5)


def test_too_few_frames_is_infinite():
    assert ctc_loss(np.log(np.full((2, 35), 1 / 35)), [4, 4]) == float("inf")
