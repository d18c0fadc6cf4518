import pytest
import torch
import yaml

from helpers import REPO
from speechquant.audio import FeatureOptions
from speechquant.corpus import synth
from speechquant.export import export
from speechquant.features import build_split
from speechquant.model import PRESETS, Wav2Letter, parameter_count
from speechquant.modelcard import ModelCard
from speechquant.params import build
from speechquant.store import Store

SLOW_FIXTURES = {"features", "project", "speech"}  # espeak-ng speech, or a whole DVC project


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on synthesized speech or a DVC project are slow, whatever module they sit in."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
    default_params["lm"]["text"] = "transcripts"  # the whole pool's LMs take 30 s; test_lm.py runs the stage on one
    default_params["quant"].update(check_utterances=2, calibration={"method": "minmax", "utterances": 4, "seed": 0})
    default_params["quant"]["qat"].update(steps=2, batch_frames=1000)
    default_params["compress"].update(
        steps=2,
        batch_frames=1000,
        precision="fp32",
        ranks={"conv0": 8, "conv8": 8, "conv9": 8},  # 16 and 32 wide
    )
    # 10 s: the length the summary's headline latency is measured at.
    default_params["benchmark"].update(batches=[1, 2], seconds=[1, 10], threads=[1], rounds=1, warmup=0)
    return default_params


@pytest.fixture
def tiny_synth(default_params) -> dict:
    """The default synth params with a few seconds of audio per split."""
    synth = default_params["data"]["synth"]
    synth["hours"] = {"train": 0.006, "dev": 0.002, "test": 0.002, "dev_unseen_text": 0.002, "dev_unseen_voice": 0.002}
    return synth


@pytest.fixture(scope="session")
def features(tmp_path_factory) -> Store:
    """Real log-mel features of a few synthesized utterances."""
    import yaml

    from helpers import REPO

    root = tmp_path_factory.mktemp("export")
    options = yaml.safe_load((REPO / "params.yaml").read_text())["data"]["synth"]
    options["hours"] = {"dev": 0.01}
    synth.build_split(build(synth.SynthOptions, options, "s"), "dev", root / "audio", workers=2)
    build_split(root / "audio", root / "features", FeatureOptions())
    return Store(root / "features")


@pytest.fixture(scope="session")
def trained_like_model() -> Wav2Letter:
    """The default preset with batch-norm statistics far from identity, so folding matters."""
    torch.manual_seed(0)
    model = Wav2Letter(PRESETS["default"])
    for index in range(10):
        norm = getattr(model, f"norm{index}")
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="session")
def exported(tmp_path_factory, trained_like_model):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    card = ModelCard(preset="default", parameters=parameter_count(trained_like_model), corpus_source="synth")
    export(trained_like_model, path, card.metadata())
    return path
