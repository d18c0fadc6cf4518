"""Training on a CUDA device: the mixed-precision paths CPU CI cannot reach (skipped without a GPU)."""

import pytest
import torch

from helpers import write_feature_store
from speechquant import model as checkpoint
from speechquant import train
from speechquant.batching import UtteranceSet
from speechquant.compress import CompressOptions, compress
from speechquant.model import ModelConfig, Wav2Letter
from speechquant.modelcard import ModelCard
from speechquant.store import Store

CARD = ModelCard(preset="test", parameters=1, corpus_source="synth")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_learns_and_its_checkpoint_runs_on_the_cpu(tmp_path, precision):
    write_feature_store(tmp_path / "train", 60, seed=0)
    write_feature_store(tmp_path / "dev", 10, seed=1)
    config = ModelConfig(hidden_channels=64, wide_channels=128, batch_norm=True, dropout=0.0)
    options = train.TrainOptions(
        seed=0, epochs=6, batch_frames=2000, learning_rate=3e-3, precision=precision, device="cuda"
    )
    trainer = train.run(config, options, Store(tmp_path / "train"), Store(tmp_path / "dev"), tmp_path / "state")
    assert trainer.device.type == "cuda"
    losses = [entry["train_loss"] for entry in trainer.history]
    assert losses[-1] < losses[0] * 0.8 and sum(e["skipped_batches"] for e in trainer.history) == 0
    train.save_model(trainer, tmp_path / "model.pt", CARD.as_dict())
    on_cpu = checkpoint.load_model(tmp_path / "model.pt")
    features = torch.randn(2, 150, 40)
    lengths = torch.tensor([150, 90])
    with torch.no_grad():
        trainer.model.eval().load_state_dict({k: v.cuda() for k, v in on_cpu.state_dict().items()})
        best = trainer.model(features.cuda(), lengths.cuda())[0].float().cpu()
        cpu = on_cpu(features, lengths)[0]
    # The saved (best) weights compute the same function on both devices, up to TF32 convolutions on CUDA.
    torch.testing.assert_close(cpu, best, atol=0.05, rtol=0.01)


@needs_cuda
def test_compress_fine_tunes_on_cuda_and_hands_back_cpu_models(tmp_path):
    write_feature_store(tmp_path / "train", 40, seed=0)
    data = UtteranceSet(Store(tmp_path / "train"))
    config = ModelConfig(hidden_channels=64, wide_channels=128, batch_norm=True, dropout=0.0)
    trained = Wav2Letter(config).eval()
    ranks = {"conv8": 8}  # the default ranks exceed what 32-channel layers allow
    options = CompressOptions(ratio=0.5, ranks=ranks, steps=5, batch_frames=2000, precision="bf16", device="cuda")
    pruned, control, measured = compress(trained, data, data, options)
    assert measured["pruned_fp32"]["device"] == measured["fp32_finetuned"]["device"] == "cuda"
    assert {p.device.type for model in (pruned, control) for p in model.parameters()} == {"cpu"}
    assert pruned.config.hidden_channels == 32 and pruned.conv8.taps.out_channels == 8
