"""Fewer multiply-accumulates than int8 alone can give: low-rank layers and structured pruning,
then distillation.

int8 already runs near the CPU's int8 GEMM peak, so going further needs fewer MACs and
fewer weights. CPU runtimes have no sparse convolutions (zeros do not run faster), so the
result must be a plain dense network that exports, quantizes and runs like the trained one.
Two ways get there, applied in this order:

- Channel pruning (``ratio`` < 1): every hidden layer keeps the same share of its output
  channels, chosen by importance: the size of a channel's output times the norm of the
  weights that read it in the next layer. ``activation`` measures the output as its RMS
  after ReLU over a few training batches; ``magnitude`` uses its filter's norm (batch norm
  folded in), which needs no data. Measured on the default model (one layer halved at a
  time, dev greedy CER before any fine-tuning): activation lost less on every layer tried,
  most on conv8's outputs (0.43 against 0.75).
- Low rank (``ranks``): a layer becomes its taps into ``rank`` channels followed by a 1x1
  conv, the pair closest to the layer's outputs on training data. Where the weights sit makes
  this the better trade: conv0 reads 48 frames x 40 mels and conv8 32 frames x 160 channels,
  windows whose values move together, and conv9 (640 -> 640) writes outputs that mostly do.
  ``tools/compress_sweep.py`` fine-tunes the candidates side by side with the control
  (``reports/compress_sweep.json``, README): channel pruning ends far behind the control, and
  low rank on conv0 and conv8 (the default) ends closest to it, ahead of conv8 alone with
  more weights and of adding conv9.

The compressed model is then fine-tuned with CTC mixed with frame-level distillation from
the trained model (KL of the teacher's log-probs to the student's), the learning rate
decaying along a cosine to zero. Extra training alone helps an unconverged model, so the
same loop, steps and data also fine-tune the uncompressed model: ``fp32_finetuned``, the
control every fine-tuned variant is compared with.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from speechquant.batching import UtteranceSet
from speechquant.ctc import LAYER_NAMES, LAYERS, N_LAYERS, ConvGeometry
from speechquant.errors import UserError
from speechquant.export import fold_batch_norm
from speechquant.model import ModelConfig, Wav2Letter, parameter_count
from speechquant.params import Checked, limits
from speechquant.train import (
    TrainOptions,
    autocast,
    choose_device,
    cosine_rate,
    ctc_loss_sum,
    evaluate,
    resolve_precision,
    to_device,
)

# Channel importance, each times the norm of the next layer's weights on the channel:
# "activation": the channel's RMS output over STATISTICS_BATCHES training batches; "magnitude": its filter's norm.
METHODS = ("activation", "magnitude")
# Whom the compressed model distils from: the trained model, or the control as it fine-tunes beside it.
TEACHERS = ("trained", "control")
CONTROL = "fp32_finetuned"
STATISTICS_BATCHES = 20
DEFAULT_RANKS = {"conv0": 64, "conv8": 112}


@dataclass(frozen=True)
class CompressOptions(Checked):
    """The ``compress`` params."""

    method: str = field(default="activation", metadata=limits(choices=METHODS))
    ratio: float = field(default=1.0, metadata=limits(above=0, high=1))  # share of each hidden layer's channels kept
    # Low-rank layers; null or {} for none (`dvc exp run -S compress.ranks=null`: -S merges mappings).
    ranks: dict[str, int] | None = field(default_factory=lambda: dict(DEFAULT_RANKS), metadata=limits(1))
    steps: int = field(default=400, metadata=limits(1, 1_000_000))  # fine-tuning steps, compressed and control alike
    learning_rate: float = field(default=6e-4, metadata=limits(above=0, high=10))  # the cosine's start
    batch_frames: int = field(default=8000, metadata=limits(1))
    distill_weight: float = field(default=0.2, metadata=limits(0, 1))  # 0: CTC only; 1: distillation only
    teacher: str = field(default="trained", metadata=limits(choices=TEACHERS))  # the compressed model's teacher
    precision: str = field(default="auto", metadata=limits(choices=("auto", "fp32", "bf16")))  # train.resolve_precision
    device: str = field(default="auto", metadata=limits(choices=("auto", "cpu", "cuda")))  # auto: CUDA if present
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


def channel_importance(output_size: torch.Tensor, next_weight: torch.Tensor) -> torch.Tensor:
    """Per output channel of a conv: the size of its output times the norm of what the next conv reads from it."""
    return output_size * next_weight.transpose(0, 1).flatten(1).norm(dim=1)


def filter_norms(folded: Wav2Letter) -> list[torch.Tensor]:
    """Per hidden layer, each output channel's filter norm: the ``magnitude`` method's output size."""
    return [getattr(folded, name).weight.detach().flatten(1).norm(dim=1) for name in LAYER_NAMES[:-1]]


def run_statistics_batches(
    folded: Wav2Letter,
    data: UtteranceSet,
    batch_frames: int,
    seed: int,
    conv: Callable[[int, torch.Tensor], torch.Tensor],
) -> int:
    """Runs ``STATISTICS_BATCHES`` shuffled training batches through ``folded``, each layer through
    ``conv(index, input)`` so that the caller can measure what the layer reads; the output frames seen.

    Shared by every statistic a compression takes, so that all of them see the same batches."""
    frames = 0
    batches = itertools.islice(data.batches(batch_frames, seed, 0, True), STATISTICS_BATCHES)
    with torch.no_grad():
        for positions in batches:
            batch = data.collate(positions)
            _, lengths = folded.run_layers(batch.features, batch.lengths, conv)
            frames += int(lengths.sum())
    return frames


def activation_rms(folded: Wav2Letter, data: UtteranceSet, batch_frames: int, seed: int) -> list[torch.Tensor]:
    """Per hidden layer, each channel's root-mean-square output after ReLU over ``STATISTICS_BATCHES``
    shuffled training batches: the ``activation`` method's output size. Padding frames count as zeros,
    which scales a layer's channels alike and so leaves their ranking alone."""
    squares = [torch.zeros(width, dtype=torch.float64) for width in folded.config.widths()[1:-1]]

    def conv(index: int, x: torch.Tensor) -> torch.Tensor:
        if index > 0:  # x: the previous layer's output after ReLU and the padding mask
            squares[index - 1] = squares[index - 1] + x.double().square().sum(dim=(0, 2))
        return getattr(folded, LAYER_NAMES[index])(x)

    frames = run_statistics_batches(folded, data, batch_frames, seed, conv)
    return [(total / max(frames, 1)).sqrt().float() for total in squares]


def prune(
    folded: Wav2Letter, ratio: float, output_sizes: list[torch.Tensor]
) -> tuple[Wav2Letter, dict[str, list[int]]]:
    """A narrower dense copy of a batch-norm-free model, and the channels each layer kept.

    ``output_sizes``: per hidden layer, how large each channel's output is (``filter_norms``, ``activation_rms``)."""
    hidden, wide = pruned_widths(folded, ratio)
    config = dataclasses.replace(folded.config, hidden_channels=hidden, wide_channels=wide)
    pruned = Wav2Letter(config)
    widths = config.widths()
    kept: dict[str, list[int]] = {}
    inputs = torch.arange(widths[0])
    for index, name in enumerate(LAYER_NAMES):
        conv = getattr(folded, name)
        if index < N_LAYERS - 1:
            score = channel_importance(output_sizes[index], getattr(folded, LAYER_NAMES[index + 1]).weight.detach())
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


class LowRankConv(nn.Module):
    """A conv of rank ``rank``: the layer's taps into ``rank`` channels, then a 1x1 conv to its outputs.

    Exported as two Conv nodes, ``<layer>_taps`` and ``<layer>_mix``, that every report counts as
    the one layer (``layers.layer_of``)."""

    def __init__(self, in_channels: int, out_channels: int, rank: int, geometry: ConvGeometry):
        super().__init__()
        self.taps = nn.Conv1d(in_channels, rank, geometry.kernel, geometry.stride, geometry.padding)
        self.mix = nn.Conv1d(rank, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.taps(x))


def largest_rank(in_channels: int, out_channels: int, kernel: int) -> int:
    """The largest rank whose two convs hold fewer weights than the full conv."""
    return math.ceil(out_channels * in_channels * kernel / (in_channels * kernel + out_channels)) - 1


def check_ranks(config: ModelConfig, ranks: dict[str, int]) -> None:
    """One error naming the key for a layer that does not exist or a rank that would save nothing."""
    widths = config.widths()
    for layer, rank in ranks.items():
        if layer not in LAYER_NAMES:
            raise UserError(f"compress.ranks names {layer!r}, which is not a layer; valid: {', '.join(LAYER_NAMES)}")
        index = LAYER_NAMES.index(layer)
        most = largest_rank(widths[index], widths[index + 1], LAYERS[index].kernel)
        if not 1 <= rank <= most:
            raise UserError(
                f"compress.ranks.{layer} is {rank}; valid: 1 to {most} (a larger rank holds more weights than "
                f"the {widths[index]} -> {widths[index + 1]} conv itself)"
            )


def input_moments(
    folded: Wav2Letter, data: UtteranceSet, batch_frames: int, seed: int, layers: list[str]
) -> dict[str, torch.Tensor]:
    """Per layer in ``layers``, the second moment E[p p^T] of the input windows its weights multiply
    (im2col's rows: channel-major, then tap), over ``STATISTICS_BATCHES`` shuffled training batches."""
    sums: dict[str, torch.Tensor] = {}
    windows: dict[str, int] = {}  # conv0's stride halves its count

    def conv(index: int, x: torch.Tensor) -> torch.Tensor:
        name = LAYER_NAMES[index]
        if name in layers:
            geometry = LAYERS[index]
            patches = F.unfold(
                x.unsqueeze(2), (1, geometry.kernel), padding=(0, geometry.padding), stride=(1, geometry.stride)
            )
            patches = patches.transpose(1, 2).flatten(0, 1)
            sums[name] = sums.get(name, 0) + (patches.T @ patches).double()
            windows[name] = windows.get(name, 0) + patches.shape[0]
        return getattr(folded, name)(x)

    run_statistics_batches(folded, data, batch_frames, seed, conv)
    return {layer: total / windows[layer] for layer, total in sums.items()}


def low_rank(conv: nn.Conv1d, rank: int, moment: torch.Tensor, geometry: ConvGeometry) -> LowRankConv:
    """The rank-``rank`` conv whose outputs are closest to ``conv``'s on the data: W' = U U^T W, U the
    top eigenvectors of the outputs' second moment W E[p p^T] W^T.

    Fitting the outputs on data rather than the weights alone (their SVD) matters because a
    layer's inputs use few of the directions its weights could read: a test checks this fit
    beats the SVD's on the data it saw; ``reports/compress_sweep.json`` has the dev CER of each
    candidate before fine-tuning."""
    weight = conv.weight.detach().double().flatten(1)
    _, vectors = torch.linalg.eigh(weight @ moment @ weight.T)
    top = vectors[:, -rank:].flip(1)  # eigh sorts ascending
    factor = LowRankConv(conv.in_channels, conv.out_channels, rank, geometry)
    with torch.no_grad():
        factor.taps.weight.copy_((top.T @ weight).reshape(rank, conv.in_channels, -1))
        factor.taps.bias.zero_()
        factor.mix.weight.copy_(top[:, :, None])
        factor.mix.bias.copy_(conv.bias)
    return factor


def factorize(folded: Wav2Letter, ranks: dict[str, int], moments: dict[str, torch.Tensor]) -> Wav2Letter:
    """A copy of a batch-norm-free model with each layer in ``ranks`` replaced by its low-rank conv."""
    factorized = copy.deepcopy(folded)
    for layer, rank in ranks.items():
        geometry = LAYERS[LAYER_NAMES.index(layer)]
        setattr(factorized, layer, low_rank(getattr(folded, layer), rank, moments[layer], geometry))
    return factorized.eval()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) summed over each utterance's own frames, in float32."""
    student, teacher = student.float(), teacher.float()
    per_frame = (teacher.exp() * (teacher - student)).sum(dim=-1)
    mask = torch.arange(per_frame.shape[1], device=per_frame.device)[None, :] < lengths[:, None]
    return (per_frame * mask).sum()


def fine_tune(
    students: dict[str, Wav2Letter],
    teacher: Wav2Letter,
    train: UtteranceSet,
    dev: UtteranceSet,
    options: CompressOptions,
    taught_by: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``options.steps`` AdamW steps of CTC mixed with distillation for every student at once, the
    learning rate decaying along a cosine to zero; per student, the dev loss and greedy CER before
    and after and the seconds its own steps took. Runs on ``options.device`` and leaves the
    students on the CPU, for export.

    The students see the same batches in the same order, and the teacher's log-probs are
    computed once per batch for all of them: a student's updates are exactly what a loop of
    its own would make, at one teacher pass instead of one per student.

    ``taught_by`` names a student whose log-probs at each step, before its update, teach the
    others in place of ``teacher``'s (online distillation); that student itself still learns
    from ``teacher``. It steps first, so each student's updates are still those of a loop with
    that student beside it, whatever the order of ``students``.

    By default the teacher is the trained model for every student, the control included: a
    fine-tuned teacher helps a compressed student, but the control trained on alike gains more
    (the second loop of ``tools/compress_sweep.py``), so a student taught by the fine-tuned control
    and compared with it would be credited with training it did not pay for. Taught online by the
    control instead (``compress.teacher: control``), the compressed model ended further behind it
    (README, one seed at 800 steps). Learning rate and distillation weight were chosen on dev with
    channel pruning (issue 16's notes)."""
    if options.device == "cuda" and not torch.cuda.is_available():
        raise UserError("compress.device is cuda but no CUDA device is available; use auto or cpu")
    torch.manual_seed(options.seed)
    settings = TrainOptions(precision=options.precision, device=options.device, batch_frames=options.batch_frames)
    device = choose_device(settings)
    teacher.to(device)
    measured: dict[str, dict[str, Any]] = {}
    optimizers = {}
    if taught_by is not None and taught_by not in students:
        raise ValueError(f"taught_by names {taught_by!r}, which is not one of the students {sorted(students)}")
    order = sorted(students, key=lambda name: name != taught_by)  # the teaching student first
    for name, student in students.items():
        student.to(device)
        loss, cer = evaluate(student, dev, settings, device)
        measured[name] = {"dev_cer_before": round(cer, 5), "dev_loss_before": round(loss, 4), "seconds": 0.0}
        optimizers[name] = torch.optim.AdamW(student.parameters(), lr=options.learning_rate, weight_decay=0.0)
        student.train()
    endless = (b for epoch in itertools.count() for b in train.batches(options.batch_frames, options.seed, epoch, True))
    weight = options.distill_weight
    steps = itertools.islice(endless, options.steps)
    for step, positions in enumerate(tqdm(steps, total=options.steps, desc="fine-tune", leave=False)):
        learning_rate = cosine_rate(options.learning_rate, step / options.steps)
        batch = to_device(train.collate(positions), device)
        with torch.no_grad(), autocast(settings, device):
            trained, _ = teacher(batch.features, batch.lengths)
        target = trained
        for name in order:
            student, started = students[name], time.perf_counter()
            with autocast(settings, device):
                log_probs, lengths = student(batch.features, batch.lengths)
            ctc = ctc_loss_sum(log_probs, lengths, batch)
            own = trained if name == taught_by else target
            loss = ((1 - weight) * ctc + weight * distillation_loss(log_probs, own, lengths)) / len(positions)
            if name == taught_by:
                target = log_probs.detach()
            if torch.isfinite(loss):
                optimizer = optimizers[name]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(student.parameters(), 5.0)
                optimizer.step()
            measured[name]["seconds"] += time.perf_counter() - started
    for name, student in students.items():
        loss, cer = evaluate(student, dev, settings, device)
        student.cpu().eval()
        seconds = measured[name].pop("seconds")
        measured[name].update(
            parameters=parameter_count(student),
            dev_cer_after=round(cer, 5),
            dev_loss_after=round(loss, 4),
            fine_tune_seconds=round(seconds, 1),
            device=device.type,
            precision=resolve_precision(options.precision, device),
        )
    teacher.cpu()
    return measured


def compressed_model(folded: Wav2Letter, train: UtteranceSet, options: CompressOptions) -> Wav2Letter:
    """A new model from a batch-norm-free one, before fine-tuning: channels pruned to ``options.ratio``,
    then the layers in ``options.ranks`` made low-rank (statistics from ``train``)."""
    hidden, wide = pruned_widths(folded, options.ratio)
    ranks = options.ranks or {}
    check_ranks(dataclasses.replace(folded.config, hidden_channels=hidden, wide_channels=wide), ranks)
    student = copy.deepcopy(folded)
    if options.ratio < 1:
        if options.method == "activation":
            output_sizes = activation_rms(folded, train, options.batch_frames, options.seed)
        else:
            output_sizes = filter_norms(folded)
        student, _ = prune(folded, options.ratio, output_sizes)
    if ranks:
        layers = [layer for layer in LAYER_NAMES if layer in ranks]
        moments = input_moments(student, train, options.batch_frames, options.seed, layers)
        student = factorize(student, ranks, moments)
    return student


def compress(
    trained: Wav2Letter, train: UtteranceSet, dev: UtteranceSet, options: CompressOptions
) -> tuple[Wav2Letter, Wav2Letter, dict[str, Any]]:
    """The compressed and fine-tuned model (channels pruned to ``ratio``, then the layers in ``ranks``
    made low-rank), the control (uncompressed, fine-tuned alike), and what was measured."""
    teacher = fold_batch_norm(trained).eval()
    student = compressed_model(teacher, train, options)
    control = fold_batch_norm(trained)
    started = time.perf_counter()
    taught_by = CONTROL if options.teacher == "control" else None
    tuned = fine_tune({"pruned_fp32": student, CONTROL: control}, teacher, train, dev, options, taught_by)
    measured = {
        "method": options.method,
        "ratio": options.ratio,
        "ranks": options.ranks or {},
        "widths": {"hidden": student.config.hidden_channels, "wide": student.config.wide_channels},
        "parameters_before": parameter_count(teacher),
        "fine_tune_seconds": round(time.perf_counter() - started, 1),  # both, the dev evaluations included
        **tuned,
    }
    return student, control, measured
