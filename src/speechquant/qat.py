"""Quantization-aware fine-tuning that matches the static int8 scheme, without torch.ao.

The BN-folded model is fine-tuned with fake quantization where static QDQ quantization
will put real quantization: each quantized conv sees int8 weights (per output channel,
symmetric) and uint8 inputs, and produces uint8 outputs (per tensor, asymmetric, ranges
first calibrated on training utterances, then tracked by moving average). torch's
``fake_quantize_per_*`` ops export as QuantizeLinear/DequantizeLinear, which ONNX
Runtime fuses into QLinearConv.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn
from tqdm import tqdm

from speechquant.batching import UtteranceSet
from speechquant.calibration import seeded_subset
from speechquant.ctc import LAYER_NAMES, LAYERS
from speechquant.errors import UserError
from speechquant.export import DYNAMIC_AXES, INPUTS, OPSET, OUTPUTS, fold_batch_norm
from speechquant.fileio import atomic_path
from speechquant.model import Wav2Letter, load_model
from speechquant.params import Checked, limits
from speechquant.quantize import QuantOptions, set_metadata
from speechquant.runtime import load_onnx, session
from speechquant.store import Store
from speechquant.train import TrainOptions, ctc_loss_sum, evaluate
from speechquant.variants import float_layers


@dataclass(frozen=True)
class QatOptions(Checked):
    """The ``quant.qat`` params."""

    steps: int = field(default=200, metadata=limits(1, 1_000_000))
    learning_rate: float = field(default=1e-4, metadata=limits(above=0, high=10))
    batch_frames: int = field(default=8000, metadata=limits(1))
    momentum: float = field(default=0.05, metadata=limits(above=0, high=1))
    seed: int = field(default=0, metadata=limits(0))


class RangeObserver(nn.Module):
    """A tensor's min/max: set by calibration, then followed by moving average in training."""

    def __init__(self, momentum: float):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("calibrated", torch.tensor(False))

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Observe ``x`` (calibration widens the range, training follows it), then fake-quantize."""
        if not bool(self.calibrated):
            self.low.copy_(torch.minimum(self.low, x.detach().min()))
            self.high.copy_(torch.maximum(self.high, x.detach().max()))
        elif self.training:
            self.low.add_(self.momentum * (x.detach().min().clamp(max=0.0) - self.low))
            self.high.add_(self.momentum * (x.detach().max().clamp(min=0.0) - self.high))
        scale = ((self.high - self.low) / 255.0).clamp(min=1e-8).reshape(1)
        zero_point = torch.round(-self.low / scale).clamp(0, 255).to(torch.int32).reshape(1)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def fake_quantize_weight(weight: torch.Tensor, limit: int) -> torch.Tensor:
    """Symmetric int8 per output channel in [-limit, limit], as static per-channel QDQ quantizes
    weights. The op's range stays [-128, 127], the one ONNX export takes: the scale alone keeps
    a 7-bit ``limit`` (64), since no weight is larger than the channel's largest."""
    scale = (weight.detach().abs().amax(dim=(1, 2)) / float(limit)).clamp(min=1e-8)
    zero_point = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -128, 127)


class FakeQuantWav2Letter(nn.Module):
    """A BN-free Wav2Letter whose quantized layers compute as int8 kernels will."""

    def __init__(self, folded: Wav2Letter, keep_float: list[str], momentum: float, weight_limit: int):
        super().__init__()
        self.base = folded
        self.weight_limit = weight_limit
        self.quantized = [name not in keep_float for name in LAYER_NAMES]
        self.inputs = nn.ModuleList(RangeObserver(momentum) for _ in LAYER_NAMES)
        self.outputs = nn.ModuleList(RangeObserver(momentum) for _ in LAYER_NAMES)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.run_layers(features, lengths, self.conv)

    def conv(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Layer ``index`` as int8 will compute it: input, weight and output fake-quantized, unless kept float."""
        conv = getattr(self.base, LAYER_NAMES[index])
        if not self.quantized[index]:
            return conv(x)
        geometry = LAYERS[index]
        x = self.inputs[index].fake_quantize(x)
        weight = fake_quantize_weight(conv.weight, self.weight_limit)
        x = nn.functional.conv1d(x, weight, conv.bias, geometry.stride, geometry.padding)
        return self.outputs[index].fake_quantize(x)


def calibrate(model: FakeQuantWav2Letter, data: UtteranceSet, utterances: int, seed: int) -> None:
    """Initial ranges: min/max over calibration utterances, one at a time (no padding)."""
    model.eval()
    with torch.no_grad():
        for position in seeded_subset(len(data), utterances, seed):
            batch = data.collate([position])
            model(batch.features, batch.lengths)
    for observer in [*model.inputs, *model.outputs]:
        observer.calibrated.fill_(True)


def fine_tune(
    model: Wav2Letter,
    keep_float: list[str],
    train: UtteranceSet,
    dev: UtteranceSet,
    options: QatOptions,
    calibration_utterances: int,
    weight_limit: int,
) -> tuple[FakeQuantWav2Letter, dict[str, float]]:
    """QAT from a trained model: calibrate, then ``options.steps`` AdamW steps with fake quantization
    (int8 weights in [-weight_limit, weight_limit])."""
    torch.manual_seed(options.seed)
    qat = FakeQuantWav2Letter(fold_batch_norm(model), keep_float, options.momentum, weight_limit)
    calibrate(qat, train, calibration_utterances, options.seed)
    evaluation = TrainOptions(precision="fp32", device="cpu", batch_frames=options.batch_frames)
    before_loss, before_cer = evaluate(qat, dev, evaluation, torch.device("cpu"))
    optimizer = torch.optim.AdamW(qat.base.parameters(), lr=options.learning_rate, weight_decay=0.0)
    endless = (b for epoch in itertools.count() for b in train.batches(options.batch_frames, options.seed, epoch, True))
    qat.train()
    for positions in tqdm(itertools.islice(endless, options.steps), total=options.steps, desc="qat", leave=False):
        batch = train.collate(positions)
        log_probs, lengths = qat(batch.features, batch.lengths)
        loss = ctc_loss_sum(log_probs, lengths, batch) / len(positions)
        if not torch.isfinite(loss):
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(qat.base.parameters(), 5.0)
        optimizer.step()
    after_loss, after_cer = evaluate(qat, dev, evaluation, torch.device("cpu"))
    qat.eval()
    return qat, {
        "qat_dev_cer_before": round(before_cer, 5),
        "qat_dev_cer_after": round(after_cer, 5),
        "qat_dev_loss_before": round(before_loss, 4),
        "qat_dev_loss_after": round(after_loss, 4),
        "qat_steps": options.steps,
    }


def export_qat(model: FakeQuantWav2Letter, path: Path) -> None:
    """ONNX with QuantizeLinear/DequantizeLinear where the fake quantization was.

    The TorchScript exporter is used here: torch.export cannot yet trace the
    fake-quantize ops. Conv nodes are named by their order, which is the model's. The
    graph then goes through ONNX Runtime's hardware-independent (basic) optimizations,
    which fold the weights' QuantizeLinear into int8 initializers: the file holds int8
    weights, as a static QDQ model does, not float ones quantized at load time.
    """
    model.eval()
    example = (torch.zeros(1, 300, model.base.config.n_mels), torch.tensor([300]))
    with atomic_path(path) as temporary, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = temporary.with_name("traced.onnx")
        torch.onnx.export(
            model,
            example,
            str(traced),
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes=DYNAMIC_AXES,
            opset_version=OPSET,
            dynamo=False,
        )
        proto = onnx.load(str(traced))
        convs = [node for node in proto.graph.node if node.op_type == "Conv"]
        for node, name in zip(convs, LAYER_NAMES, strict=True):
            node.name = name
        onnx.checker.check_model(proto)
        onnx.save(proto, traced)
        session(traced, optimized_path=temporary, basic_optimizations=True)
        onnx.checker.check_model(onnx.load(str(temporary)))


def make_qat_variant(
    checkpoint: Path,
    source: Path,
    output: Path,
    options: QuantOptions,
    qat_options: QatOptions,
    train: Store,
    dev: Store,
) -> tuple[list[str], dict[str, Any]]:
    """``qat_int8``: the trained checkpoint fine-tuned with fake quantization on ``train``
    (checked on ``dev``), exported as QDQ with the exported model's card. Returns the
    layers kept in float (``quant.exclude``) and the dev CER before and after."""
    keep_float = float_layers("qat_int8", options.exclude)
    if len(keep_float) == len(LAYER_NAMES):
        raise UserError("qat_int8: quant.exclude keeps every layer in float; nothing is left to quantize")
    metadata = {prop.key: prop.value for prop in load_onnx(source).metadata_props}
    model, measured = fine_tune(
        load_model(checkpoint),
        keep_float,
        UtteranceSet(train),
        UtteranceSet(dev),
        qat_options,
        options.calibration.utterances,
        options.weight_limit,
    )
    with atomic_path(output) as temporary:
        export_qat(model, temporary)
        set_metadata(temporary, metadata)
    return keep_float, measured
