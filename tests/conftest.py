import pytest
import yaml
from helpers import REPO


@pytest.fixture
def default_params() -> dict:
    """The repository's params.yaml, to be shrunk by each test."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def tiny_synth(default_params) -> dict:
    """The default synth params with a few seconds of audio per split."""
    synth = default_params["data"]["synth"]
    synth["hours"] = {"train": 0.006, "dev": 0.002, "test": 0.002}
    return synth
