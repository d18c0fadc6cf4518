"""tools/anneal_pairs.py: one run ended two ways is only a fair pair if both ends resume the same state."""

import dataclasses

import torch

from helpers import load_tool, write_feature_store
from speechquant.audio import FeatureOptions
from speechquant.model import ModelConfig
from speechquant.store import Store
from speechquant.train import TrainOptions, fingerprint, run

pairs = load_tool("anneal_pairs")


def test_a_branched_state_resumes_under_either_schedule_and_only_the_last_epoch_differs(tmp_path, capsys):
    write_feature_store(tmp_path / "train", 40, seed=0)
    write_feature_store(tmp_path / "dev", 10, seed=1)
    stores = Store(tmp_path / "train"), Store(tmp_path / "dev")
    config = ModelConfig(hidden_channels=16, wide_channels=32)
    cpu = torch.device("cpu")
    plateau = TrainOptions(epochs=3, batch_frames=1000, learning_rate=3e-3, precision="fp32")
    shared = run(config, dataclasses.replace(plateau, epochs=2), *stores, tmp_path / "shared")
    ends = {}
    for schedule in ("plateau", "anneal"):
        options = dataclasses.replace(plateau, schedule=schedule)
        pairs.branch_state(tmp_path / "shared", tmp_path / schedule, fingerprint(options, config, list(stores)))
        ends[schedule] = run(config, options, *stores, tmp_path / schedule)
    assert capsys.readouterr().out.count("resuming after epoch 2") == 2
    assert ends["plateau"].history[:2] == ends["anneal"].history[:2] == shared.history
    assert ends["plateau"].history[2]["learning_rate"] == 3e-3
    assert ends["anneal"].history[2]["learning_rate"] < 3e-3 / 5
    assert ends["plateau"].history[2]["train_loss"] != ends["anneal"].history[2]["train_loss"]
    for schedule, ended in ends.items():  # what each end scores is its best epoch, as the stage would save it
        meta = {**dataclasses.asdict(FeatureOptions()), **stores[1].meta}  # the test store's meta names no features
        model = load_tool("augment_train").best_model(ended, meta, "default", tmp_path / f"{schedule}.pt", cpu)
        assert all(torch.equal(model.state_dict()[name], ended.best_state[name]) for name in ended.best_state)
