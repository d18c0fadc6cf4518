import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import REPO, write_feature_store
from speechquant import model as checkpoint
from speechquant import train
from speechquant.batching import UtteranceSet
from speechquant.errors import UserError
from speechquant.model import ModelConfig
from speechquant.modelcard import ModelCard
from speechquant.params import build
from speechquant.store import Store, StoreWriter, Utterance

CARD = ModelCard(preset="test", parameters=1, corpus_source="synth")

SCRIPT = REPO / "tests" / "train_script.py"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    write_feature_store(root / "train", 40, seed=0)
    write_feature_store(root / "dev", 10, seed=1)
    return root


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_training_learns_and_saves_a_checkpoint_that_loads_without_pickle(data, tmp_path):
    config = ModelConfig(hidden_channels=32, wide_channels=64, batch_norm=True, dropout=0.0)
    options = train.TrainOptions(
        seed=0, epochs=4, batch_frames=1500, learning_rate=3e-3, precision="fp32", device="cpu"
    )
    trainer = train.run(config, options, Store(data / "train"), Store(data / "dev"), tmp_path / "state")
    losses = [entry["train_loss"] for entry in trainer.history]
    assert losses[-1] < losses[0] * 0.8
    train.save_model(trainer, tmp_path / "model.pt", CARD.as_dict())
    saved = checkpoint.load_checkpoint(tmp_path / "model.pt", expected=config)
    assert saved["epoch"] == trainer.best["epoch"] and ModelCard.from_dict(saved["card"]) == CARD
    model = checkpoint.load_model(tmp_path / "model.pt")
    assert not model.training and model.config == config


def test_a_checkpoint_for_other_params_is_one_clear_error(data, tmp_path):
    config = ModelConfig(hidden_channels=16, wide_channels=32)
    trainer = train.run(
        config,
        train.TrainOptions(epochs=1, precision="fp32"),
        Store(data / "train"),
        Store(data / "dev"),
        tmp_path / "s",
    )
    train.save_model(trainer, tmp_path / "model.pt", CARD.as_dict())
    other = ModelConfig(hidden_channels=250, wide_channels=2000)
    with pytest.raises(
        UserError, match=r"trained with model .*'hidden_channels': 16.* params ask for .*'hidden_channels': 250"
    ):
        checkpoint.load_checkpoint(tmp_path / "model.pt", expected=other)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "junk.pt")


def test_a_saved_state_resumes_only_on_the_same_feature_values(data, tmp_path, capsys):
    config = ModelConfig(hidden_channels=16, wide_channels=32)
    options = train.TrainOptions(epochs=1, batch_frames=1000, precision="fp32")
    train.run(config, options, Store(data / "train"), Store(data / "dev"), tmp_path / "state")
    trainer = train.run(config, options, Store(data / "train"), Store(data / "dev"), tmp_path / "state")
    assert "resuming after epoch 1" in capsys.readouterr().out and len(trainer.history) == 1

    changed = Store(data / "train")
    with StoreWriter(tmp_path / "train", np.float16, (40,), changed.meta) as writer:
        for index, (utterance, rows) in enumerate(changed):
            rows = np.array(rows)
            if index == 7:
                rows[3, 5] += 1  # one feature value, as a changed features.window_ms would move many
            writer.append(Utterance(utterance.id, utterance.text, 0), rows)
    trainer = train.run(config, options, Store(tmp_path / "train"), Store(data / "dev"), tmp_path / "state")
    output = capsys.readouterr().out
    assert len(trainer.history) == 1 and "epoch 1: train loss" in output  # trained again
    assert "resuming" not in output
    lines = [line for line in output.splitlines() if line.startswith("starting afresh")]
    assert lines == [
        f"starting afresh: {tmp_path / 'state' / 'last.pt'} was saved for different training or dev features"
    ]


def test_cosine_falls_to_zero_over_the_run_and_anneal_within_the_last_epoch():
    cosine = train.TrainOptions(epochs=4, learning_rate=2e-3, schedule="cosine")
    anneal = dataclasses.replace(cosine, schedule="anneal")
    done = (0, 1, 2, 3, 3.5, 4)
    assert [train.scheduled_rate(cosine, d) for d in done] == pytest.approx(
        [2e-3, 2e-3 * 0.8536, 1e-3, 2e-3 * 0.1464, 2e-3 * 0.0381, 0.0], abs=1e-7
    )
    assert [train.scheduled_rate(anneal, d) for d in done] == pytest.approx([2e-3] * 4 + [1e-3, 0.0], abs=1e-7)
    with pytest.raises(UserError, match=r"train\.schedule.*plateau.*cosine.*anneal"):
        build(train.TrainOptions, {"schedule": "linear"}, "train")


@pytest.mark.parametrize("schedule", ["cosine", "anneal"])
def test_a_scheduled_run_takes_its_rates_per_step_and_resumes_on_them(data, tmp_path, capsys, schedule):
    config = ModelConfig(hidden_channels=16, wide_channels=32)
    stores = Store(data / "train"), Store(data / "dev")
    options = train.TrainOptions(epochs=2, batch_frames=1000, learning_rate=3e-3, precision="fp32", schedule=schedule)
    trainer = train.run(config, options, *stores, tmp_path / "state")
    steps = len(UtteranceSet(stores[0]).batches(1000, 0, 0, shuffle=True))
    expected = [train.scheduled_rate(options, e + (steps - 1) / steps) for e in (0, 1)]  # each epoch's last step
    assert [entry["learning_rate"] for entry in trainer.history] == pytest.approx(expected)
    assert expected[1] < expected[0] / 5  # the rate falls close to zero by the end
    resumed = train.run(config, options, *stores, tmp_path / "state")
    assert "resuming after epoch 2" in capsys.readouterr().out and resumed.history == trainer.history


def test_plateau_keeps_its_rate_while_dev_loss_falls(data, tmp_path):
    config = ModelConfig(hidden_channels=16, wide_channels=32)
    options = train.TrainOptions(epochs=1, batch_frames=1000, learning_rate=3e-3, precision="fp32")
    assert options.schedule == "plateau"
    trainer = train.run(config, options, Store(data / "train"), Store(data / "dev"), tmp_path / "state")
    assert trainer.history[0]["learning_rate"] == 3e-3


def test_a_batch_with_non_finite_loss_is_skipped_and_counted(data, tmp_path):
    store = Store(data / "train")
    with StoreWriter(tmp_path / "train", np.float16, (40,), {"kind": "log_mel", "hop_ms": 10.0}) as writer:
        for utterance, rows in store:
            writer.append(Utterance(utterance.id, utterance.text, 0), rows)
        poisoned = np.full((80, 40), np.inf, dtype=np.float16)
        writer.append(Utterance("poisoned", "bad", 0), poisoned)
    options = train.TrainOptions(epochs=1, batch_frames=300, precision="fp32")
    trainer = train.run(
        ModelConfig(hidden_channels=16, wide_channels=32),
        options,
        Store(tmp_path / "train"),
        Store(data / "dev"),
        tmp_path / "s",
    )
    assert trainer.history[0]["skipped_batches"] == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_result(data, tmp_path):
    killed = run_script(data, tmp_path / "state", tmp_path / "unused.pt", "kill")
    assert killed.returncode == -9
    assert (tmp_path / "state" / "last.pt").exists()
    resumed = run_script(data, tmp_path / "state", tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1" in resumed.stdout
    straight = run_script(data, tmp_path / "fresh_state", tmp_path / "straight.pt")
    assert straight.returncode == 0, straight.stderr
    a = torch.load(tmp_path / "resumed.pt", weights_only=True)
    b = torch.load(tmp_path / "straight.pt", weights_only=True)
    for name, tensor in b["state_dict"].items():
        torch.testing.assert_close(a["state_dict"][name], tensor, atol=1e-5, rtol=1e-4)
    assert [e["dev_cer"] for e in a["history"]] == pytest.approx([e["dev_cer"] for e in b["history"]], abs=1e-6)


def run_single_and_two_gloo_processes(data, tmp_path, *flags) -> tuple[dict, dict]:
    single = run_script(data, tmp_path / "s1", tmp_path / "single.pt", "no-augment", *flags)
    assert single.returncode == 0, single.stderr
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(SCRIPT)]
    result = subprocess.run(
        [*command, str(data), str(tmp_path / "s2"), str(tmp_path / "ddp.pt"), "no-augment", *flags],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return torch.load(tmp_path / "single.pt", weights_only=True), torch.load(tmp_path / "ddp.pt", weights_only=True)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_on_the_same_global_batches(data, tmp_path):
    a, b = run_single_and_two_gloo_processes(data, tmp_path)
    # The losses are the sharp check: equal to float noise when the global batches are the same.
    assert [e["train_loss"] for e in b["history"]] == pytest.approx([e["train_loss"] for e in a["history"]], rel=1e-5)
    assert [e["dev_loss"] for e in b["history"]] == pytest.approx([e["dev_loss"] for e in a["history"]], rel=1e-5)
    # Weights only roughly: Adam divides by the gradient's own scale, so float noise in a
    # near-zero gradient (conv0, far from the loss) becomes a step of up to the learning rate.
    for name, tensor in a["state_dict"].items():
        assert float((b["state_dict"][name] - tensor).norm() / tensor.norm()) < 0.03, name


@pytest.mark.slow
def test_with_batch_norm_two_cpu_processes_follow_a_near_but_not_the_same_trajectory(data, tmp_path):
    """The default preset has batch norm, which is per process on CPU (no SyncBatchNorm there).

    Measured: epoch losses 0.3-0.9 % apart from one process's, so the bounds below hold with
    margin on both sides: not equal (as they are without batch norm), but close.
    """
    a, b = run_single_and_two_gloo_processes(data, tmp_path, "batch-norm")
    single, ddp = np.array([e["train_loss"] for e in a["history"]]), np.array([e["train_loss"] for e in b["history"]])
    relative = np.abs(ddp - single) / single
    assert relative[0] > 1e-4  # each process normalized its own half of the batch
    assert relative.max() < 0.03
    dev_single, dev_ddp = (np.array([e["dev_loss"] for e in x["history"]]) for x in (a, b))
    assert (np.abs(dev_ddp - dev_single) / dev_single).max() < 0.03


@pytest.mark.parametrize(
    ("native", "device", "expected"), [(True, "cpu", "bf16"), (False, "cpu", "fp32"), (True, "cuda", "fp32")]
)
def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it_natively(monkeypatch, native, device, expected):
    """Emulated bf16 trained 2.7x slower than fp32 on a CPU without it; on an H100 bf16 did not pay either."""
    monkeypatch.setattr(train, "native_bf16", lambda: native)
    assert train.resolve_precision("auto", torch.device(device)) == expected
    assert train.resolve_precision("fp32", torch.device(device)) == "fp32"  # an explicit choice stands
    assert train.resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_auto_precision_on_the_committed_runs_cpu_is_the_precision_it_trained_in(monkeypatch):
    """The committed model was trained where ``auto`` means what it was trained in (the benchmark's CPU),
    so it is what ``dvc repro`` gives there with ``precision: auto``."""
    flags = json.loads((REPO / "metrics" / "benchmark.json").read_text())["hardware"]["flags"]
    monkeypatch.setattr(train, "native_bf16", lambda: flags["avx512_bf16"] or flags["amx_bf16"])
    trained = json.loads((REPO / "metrics" / "train.json").read_text())
    assert train.resolve_precision("auto", torch.device(trained["device"])) == trained["precision"] == "bf16"


def test_a_trainer_keeps_the_precision_auto_chose_for_its_metrics(data, monkeypatch):
    monkeypatch.setattr(train, "native_bf16", lambda: False)
    options = build(train.TrainOptions, {"batch_frames": 2000, "device": "cpu"}, "train")
    sets = [UtteranceSet(Store(data / split)) for split in ("train", "dev")]
    trainer = train.Trainer(ModelConfig(hidden_channels=16, wide_channels=32), options, *sets)
    assert options.precision == "auto" and trainer.precision == "fp32"
