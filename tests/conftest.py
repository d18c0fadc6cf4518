import pytest
import yaml

from helpers import REPO


@pytest.fixture
def default_params() -> dict:
    """The repository's params.yaml, to be shrunk by each test."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def tiny_params(default_params, tiny_synth) -> dict:
    """The whole params file shrunk so that a full `dvc repro` takes seconds."""
    default_params["data"]["synth"] = tiny_synth
    default_params["model"].update(hidden_channels=16, wide_channels=32)
    default_params["train"].update(epochs=2, precision="fp32")
    default_params["quant"].update(check_utterances=2, calibration={"method": "minmax", "utterances": 4, "seed": 0})
    default_params["quant"]["qat"].update(steps=2, batch_frames=1000)
    return default_params


@pytest.fixture
def tiny_synth(default_params) -> dict:
    """The default synth params with a few seconds of audio per split."""
    synth = default_params["data"]["synth"]
    synth["hours"] = {"train": 0.006, "dev": 0.002, "test": 0.002}
    return synth
