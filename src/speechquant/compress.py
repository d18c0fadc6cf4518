"""Fewer multiply-accumulates than int8 alone can give: structured pruning, then distillation.

int8 already runs near the CPU's int8 GEMM peak, so going further needs fewer MACs and
fewer weights. CPU runtimes have no sparse convolutions (zeros do not run faster), so the
pruning is structured: every hidden layer keeps the same share ``ratio`` of its output
channels, chosen by importance, and the result is a plain dense Wav2Letter of narrower
widths (``hidden_channels``, ``wide_channels`` scaled), which exports, quantizes and runs
like the trained model. A channel's importance is the norm of its filter (batch norm
folded in) times the norm of the weights that read it in the next layer: a channel that is
small on either side contributes little.

The pruned model is then fine-tuned with CTC mixed with frame-level distillation from the
trained model (KL of the teacher's log-probs to the student's). Extra training alone helps
an unconverged model, so the same loop, steps and data also fine-tune the unpruned model:
``fp32_finetuned``, the control every fine-tuned variant is compared with.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from speechquant.batching import UtteranceSet
from speechquant.ctc import LAYER_NAMES, N_LAYERS
from speechquant.errors import UserError
from speechquant.export import fold_batch_norm
from speechquant.model import Wav2Letter, parameter_count
from speechquant.params import Checked, limits
from speechquant.train import TrainOptions, autocast, ctc_loss_sum, evaluate

METHODS = ("magnitude",)  # channel importance: filter norm times the norm of the next layer's weights on it


@dataclass(frozen=True)
class CompressOptions(Checked):
    """The ``compress`` params."""

    method: str = field(default="magnitude", metadata=limits(choices=METHODS))
    ratio: float = field(default=0.6, metadata=limits(above=0, high=1))  # share of each hidden layer's channels kept
    steps: int = field(default=300, metadata=limits(1, 1_000_000))  # fine-tuning steps, pruned and control alike
    learning_rate: float = field(default=3e-4, metadata=limits(above=0, high=10))
    batch_frames: int = field(default=8000, metadata=limits(1))
    distill_weight: float = field(default=0.5, metadata=limits(0, 1))  # 0: CTC only; 1: distillation only
    precision: str = field(default="bf16", metadata=limits(choices=("fp32", "bf16")))  # CPU autocast
    seed: int = field(default=0, metadata=limits(0))


def pruned_widths(folded: Wav2Letter, ratio: float) -> tuple[int, int]:
    """The hidden and wide widths that keep ``ratio`` of the channels; refused where a layer would keep none."""
    config = folded.config
    hidden, wide = round(config.hidden_channels * ratio), round(config.wide_channels * ratio)
    if min(hidden, wide) < 1:
        smallest = 0.5 / min(config.hidden_channels, config.wide_channels)
        raise UserError(
            f"compress.ratio {ratio:g} would leave a layer with no channels (hidden {config.hidden_channels}, "
            f"wide {config.wide_channels}); valid: above {smallest:.4g} and at most 1"
        )
    return hidden, wide


def channel_importance(weight: torch.Tensor, next_weight: torch.Tensor) -> torch.Tensor:
    """Per output channel of a conv: its filter's norm times the norm of what the next conv reads from it."""
    return weight.flatten(1).norm(dim=1) * next_weight.transpose(0, 1).flatten(1).norm(dim=1)


def prune(folded: Wav2Letter, ratio: float) -> tuple[Wav2Letter, dict[str, list[int]]]:
    """A narrower dense copy of a batch-norm-free model, and the channels each layer kept."""
    hidden, wide = pruned_widths(folded, ratio)
    config = dataclasses.replace(folded.config, hidden_channels=hidden, wide_channels=wide)
    pruned = Wav2Letter(config)
    widths = config.widths()
    kept: dict[str, list[int]] = {}
    inputs = torch.arange(widths[0])
    for index, name in enumerate(LAYER_NAMES):
        conv = getattr(folded, name)
        if index < N_LAYERS - 1:
            score = channel_importance(conv.weight.detach(), getattr(folded, LAYER_NAMES[index + 1]).weight.detach())
            outputs = torch.sort(torch.topk(score, widths[index + 1]).indices).values
        else:
            outputs = torch.arange(conv.out_channels)  # the classes
        target = getattr(pruned, name)
        with torch.no_grad():
            target.weight.copy_(conv.weight[outputs][:, inputs])
            target.bias.copy_(conv.bias[outputs])
        kept[name] = outputs.tolist()
        inputs = outputs
    if folded.config.normalization == "global":
        pruned.load_state_dict({k: v for k, v in folded.state_dict().items() if k.startswith("input_")}, strict=False)
    return pruned.eval(), kept


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) summed over each utterance's own frames, in float32."""
    student, teacher = student.float(), teacher.float()
    per_frame = (teacher.exp() * (teacher - student)).sum(dim=-1)
    mask = torch.arange(per_frame.shape[1])[None, :] < lengths[:, None]
    return (per_frame * mask).sum()


def fine_tune(
    student: Wav2Letter,
    teacher: Wav2Letter,
    train: UtteranceSet,
    dev: UtteranceSet,
    options: CompressOptions,
    name: str,
) -> dict[str, Any]:
    """``options.steps`` AdamW steps of CTC mixed with distillation; the dev loss and greedy CER
    before and after, and the seconds the steps took."""
    torch.manual_seed(options.seed)
    settings = TrainOptions(precision=options.precision, device="cpu", batch_frames=options.batch_frames)
    cpu = torch.device("cpu")
    before_loss, before_cer = evaluate(student, dev, settings, cpu)
    optimizer = torch.optim.AdamW(student.parameters(), lr=options.learning_rate, weight_decay=0.0)
    endless = (b for epoch in itertools.count() for b in train.batches(options.batch_frames, options.seed, epoch, True))
    weight = options.distill_weight
    started = time.perf_counter()
    student.train()
    for positions in tqdm(itertools.islice(endless, options.steps), total=options.steps, desc=name, leave=False):
        batch = train.collate(positions)
        with autocast(settings, cpu):
            log_probs, lengths = student(batch.features, batch.lengths)
            with torch.no_grad():
                target, _ = teacher(batch.features, batch.lengths)
        ctc = ctc_loss_sum(log_probs, lengths, batch)
        loss = ((1 - weight) * ctc + weight * distillation_loss(log_probs, target, lengths)) / len(positions)
        if not torch.isfinite(loss):
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), 5.0)
        optimizer.step()
    seconds = time.perf_counter() - started
    after_loss, after_cer = evaluate(student, dev, settings, cpu)
    student.eval()
    return {
        "parameters": parameter_count(student),
        "dev_cer_before": round(before_cer, 5),
        "dev_cer_after": round(after_cer, 5),
        "dev_loss_before": round(before_loss, 4),
        "dev_loss_after": round(after_loss, 4),
        "fine_tune_seconds": round(seconds, 1),
    }


def compress(
    trained: Wav2Letter, train: UtteranceSet, dev: UtteranceSet, options: CompressOptions
) -> tuple[Wav2Letter, Wav2Letter, dict[str, Any]]:
    """The pruned and fine-tuned model, the control (unpruned, fine-tuned alike), and what was measured."""
    teacher = fold_batch_norm(trained).eval()
    pruned, _ = prune(teacher, options.ratio)
    control = fold_batch_norm(trained)
    measured = {
        "method": options.method,
        "ratio": options.ratio,
        "widths": {"hidden": pruned.config.hidden_channels, "wide": pruned.config.wide_channels},
        "parameters_before": parameter_count(teacher),
        "pruned_fp32": fine_tune(pruned, teacher, train, dev, options, "pruned_fp32"),
        "fp32_finetuned": fine_tune(control, teacher, train, dev, options, "fp32_finetuned"),
    }
    return pruned, control, measured
