"""Training Wav2Letter with CTC: length-bucketed batches, SpecAugment, AdamW, resume.

The run is a pure function of its params and data: batches and augmentation come
from generators seeded with ``(seed, epoch)`` and torch's generator is reseeded at every
epoch, so a run resumed from an epoch checkpoint (after a crash or ``kill -9``) ends
with the same weights as one that never stopped.

Data parallel: under ``torchrun`` each process takes every ``world``-th utterance of
each global batch; the loss is the sum over a process's utterances divided by the
global batch size (times ``world``, which DDP's gradient averaging divides out). For a
model without batch norm the update then equals a single process's on the same global
batch. The default preset has batch norm: on CUDA it is synchronized (SyncBatchNorm), but
on CPU each process normalizes by its own share's statistics, so a CPU data-parallel run
follows a nearby but not the same trajectory as one process (``tests/test_train.py``
measures how near).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from speechquant.batching import Batch, SpecAugmentOptions, TempoOptions, UtteranceSet
from speechquant.ctc import greedy
from speechquant.errors import UserError
from speechquant.hardware import native_bf16
from speechquant.metrics import error_rate
from speechquant.model import ModelConfig, Wav2Letter, parameter_count, save_checkpoint
from speechquant.params import Checked, limits
from speechquant.store import Store
from speechquant.text import BLANK_ID

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("plateau", "cosine", "anneal")


@dataclass(frozen=True)
class TrainOptions(Checked):
    """The ``train`` params."""

    seed: int = field(default=0, metadata=limits(0))
    epochs: int = field(default=10, metadata=limits(1, 10_000))
    batch_frames: int = field(default=20_000, metadata=limits(1))
    learning_rate: float = field(default=1e-3, metadata=limits(above=0, high=10))
    weight_decay: float = field(default=1e-2, metadata=limits(0))
    grad_clip: float = field(default=5.0, metadata=limits(above=0))
    lr_patience: int = field(default=1, metadata=limits(0))
    lr_factor: float = field(default=0.5, metadata=limits(above=0, high=1))
    schedule: str = field(default="plateau", metadata=limits(choices=SCHEDULES))
    precision: str = field(default="auto", metadata=limits(choices=PRECISIONS))  # auto: resolve_precision
    device: str = field(default="auto", metadata=limits(choices=DEVICES))
    spec_augment: SpecAugmentOptions = field(default_factory=SpecAugmentOptions)
    tempo: TempoOptions = field(default_factory=TempoOptions)


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    dev_loss: float
    dev_cer: float
    learning_rate: float
    skipped_batches: int
    audio_seconds: float
    train_seconds: float


def _content_digest(store: Store) -> str:
    """A hash of a store's every byte: its features, offsets, transcripts and meta."""
    digest = hashlib.sha256()
    for name in sorted(path.name for path in store.path.iterdir()):
        with open(store.path / name, "rb") as file:
            while block := file.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def fingerprint(options: TrainOptions, config: ModelConfig, stores: list[Store]) -> dict[str, str]:
    """What a resumable state must match: the params, and the data to the last feature value.

    Kept as two hashes so that a refused resume can say which of the two changed.
    """
    params = json.dumps([asdict(options), config.as_dict()], sort_keys=True, default=str)
    data = hashlib.sha256("".join(_content_digest(store) for store in stores).encode())
    return {"params": hashlib.sha256(params.encode()).hexdigest(), "data": data.hexdigest()}


def resumable(state: dict[str, Any], key: dict[str, str], path: Path, report: bool = True) -> bool:
    """Whether a saved state belongs to this run; if not, one line (when ``report``) says why."""
    saved = state.get("fingerprint")
    if saved == key:
        return True
    changed = [part for part in ("params", "data") if not isinstance(saved, dict) or saved.get(part) != key[part]]
    what = {"params": "model or train params", "data": "training or dev features"}
    if report:
        print(f"starting afresh: {path} was saved for different {' and '.join(what[part] for part in changed)}")
    return False


def _saved_state(path: Path, device: torch.device, main: bool) -> dict[str, Any] | None:
    """The state saved after the last finished epoch, or None to start afresh.

    A file that cannot be read (cut short by a full disk or a copy, damaged by hand)
    would otherwise stop every re-run with a PyTorch traceback until deleted: it is
    renamed aside with the reason in its name, and training starts from epoch 0.
    """
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
        if main:
            aside = path.with_name(f"{path.stem}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
            os.replace(path, aside)
            print(f"starting afresh: {path} is unreadable ({type(error).__name__}); moved to {aside}")
        return None


def choose_device(options: TrainOptions) -> torch.device:
    if options.device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no CUDA device is available")
    if options.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision ``auto`` stands for on ``device``: bf16 autocast on a CPU that computes bf16 in
    hardware, fp32 anywhere else. Each is the faster there for the default model: bf16 ran 1.6x
    (AMD EPYC, AVX-512 BF16) and 3.5x (Xeon, AMX) faster than fp32 on CPUs that have it, 2.7x
    slower on one that has not (``hardware.native_bf16``), and 0.87x of fp32 on one H100, where
    the model is too small for bf16 to pay (README, *What the default model is for*)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and native_bf16() else "fp32"


def autocast(options: TrainOptions, device: torch.device):
    """Mixed precision context: bf16 on CPU or CUDA, fp16 on CUDA only; ``auto`` as ``resolve_precision`` says."""
    precision = resolve_precision(options.precision, device)
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise UserError("train.precision fp16 needs CUDA; use bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def global_statistics(store: Store) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and standard deviation over every training frame, in float64 sums."""
    total = np.zeros(store.data.shape[1])
    squares = np.zeros(store.data.shape[1])
    for start in range(0, len(store.data), 1_000_000):
        chunk = np.asarray(store.data[start : start + 1_000_000], dtype=np.float64)
        total += chunk.sum(axis=0)
        squares += (chunk**2).sum(axis=0)
    mean = total / max(len(store.data), 1)
    std = np.sqrt(np.maximum(squares / max(len(store.data), 1) - mean**2, 1e-10))
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def ctc_loss_sum(log_probs: torch.Tensor, lengths: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Summed CTC loss; float32 whatever the autocast precision."""
    return nn.functional.ctc_loss(
        log_probs.float().transpose(0, 1),
        batch.targets,
        lengths,
        batch.target_lengths,
        blank=BLANK_ID,
        reduction="sum",
        zero_infinity=False,
    )


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch's tensors on ``device``; the utterance indices stay on the host for scoring."""
    return Batch(
        batch.features.to(device),
        batch.lengths.to(device),
        batch.targets.to(device),
        batch.target_lengths.to(device),
        batch.indices,
    )


@torch.no_grad()
def evaluate(model: nn.Module, data: UtteranceSet, options: TrainOptions, device: torch.device) -> tuple[float, float]:
    """Mean CTC loss per utterance and greedy CER over a whole split."""
    model.eval()
    loss_sum = 0.0
    references, hypotheses = [], []
    for positions in data.batches(options.batch_frames, options.seed, epoch=0, shuffle=False):
        batch = to_device(data.collate(positions), device)
        with autocast(options, device):
            log_probs, lengths = model(batch.features, batch.lengths)
        loss_sum += float(ctc_loss_sum(log_probs, lengths, batch))
        log_probs = log_probs.float().cpu().numpy()
        for row, index in enumerate(batch.indices):
            hypotheses.append(greedy(log_probs[row], int(lengths[row])))
            references.append(data.store.utterances[index].text)
    return loss_sum / max(len(data), 1), error_rate(references, hypotheses)


def scheduled_rate(options: TrainOptions, epochs_done: float) -> float:
    """The rate after ``epochs_done`` (fractional) epochs under ``train.schedule`` ``cosine`` or ``anneal``.

    ``cosine`` falls from ``learning_rate`` to zero along a cosine over the whole run;
    ``anneal`` holds ``learning_rate`` and takes the same cosine to zero within the last
    epoch only. Why both: with ``plateau`` dev loss falls every epoch of the default run,
    the rate never drops, and the model is left wherever the last steps at full rate put
    it (README "Where training stops"); a cosine lowers the rate early, an anneal keeps
    the full-rate progress. Set per step from the position in training alone, so a
    resumed run takes the same rates as an unbroken one with no scheduler state to save.
    """
    start = options.epochs - 1.0 if options.schedule == "anneal" else 0.0
    return cosine_rate(options.learning_rate, max(epochs_done - start, 0.0) / (options.epochs - start))


def cosine_rate(learning_rate: float, progress: float) -> float:
    """``learning_rate`` at ``progress`` (0 to 1) along a cosine to zero: training's and compress's one decay."""
    return learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """One training run: model, optimizer, scheduler and the state needed to resume it."""

    def __init__(self, config: ModelConfig, options: TrainOptions, train: UtteranceSet, dev: UtteranceSet):
        self.config = config
        self.options = options
        self.train = train
        self.dev = dev
        self.distributed = Distributed(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
        self.device = choose_device(options)
        self.precision = resolve_precision(options.precision, self.device)
        torch.manual_seed(options.seed)
        self.model = Wav2Letter(config).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
        )
        self.scheduler = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=options.lr_factor, patience=options.lr_patience
            )
            if options.schedule == "plateau"
            else None
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"dev_cer": math.inf, "epoch": -1}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.wrapped: nn.Module = self.model
        if self.distributed.world > 1:
            if self.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.wrapped = nn.parallel.DistributedDataParallel(self.model)

    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.as_dict(),
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "history": self.history,
            "best": self.best,
            "best_state_dict": self.best_state,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = state["history"]
        self.best = state["best"]
        self.best_state = state["best_state_dict"]

    def _local_positions(self, positions: list[int]) -> tuple[list[int], float]:
        """This process's share of a global batch, and the weight of its loss.

        Batches never depend on the number of processes. When a batch has fewer
        utterances than processes, the ones left without run an utterance at weight 0,
        so that DDP's gradient all-reduce still meets every process.
        """
        local = positions[self.distributed.rank :: self.distributed.world]
        return (local, 1.0) if local else (positions[:1], 0.0)

    def train_epoch(self, epoch: int) -> EpochResult:
        options, device, world = self.options, self.device, self.distributed.world
        torch.manual_seed(options.seed * 100_003 + epoch)  # dropout masks depend on the epoch alone
        augment_rng = np.random.default_rng([options.seed, epoch, self.distributed.rank, 1])
        batches = self.train.batches(options.batch_frames, options.seed, epoch, shuffle=True)
        self.wrapped.train()
        loss_sum, utterances, skipped, audio_frames = 0.0, 0, 0, 0
        started = time.perf_counter()
        progress = tqdm(
            batches, desc=f"epoch {epoch + 1}/{options.epochs}", leave=False, disable=not self.distributed.main
        )
        for step, positions in enumerate(progress):
            if not self.scheduler:
                for group in self.optimizer.param_groups:
                    group["lr"] = scheduled_rate(options, epoch + step / len(batches))
            local, weight = self._local_positions(positions)
            batch = to_device(self.train.collate(local, options.spec_augment, augment_rng, options.tempo), device)
            with autocast(options, device):
                log_probs, lengths = self.wrapped(batch.features, batch.lengths)
            loss = ctc_loss_sum(log_probs, lengths, batch) * weight
            if not self._all_finite(loss):
                skipped += 1
                self.optimizer.zero_grad(set_to_none=True)
                continue
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss * world / len(positions)).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), options.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += float(loss.detach())
            utterances += len(batch.indices) if weight else 0
            audio_frames += int(batch.lengths.sum()) if weight else 0
            progress.set_postfix(loss=f"{float(loss.detach()) / max(len(batch.indices), 1):.3f}")
        train_seconds = time.perf_counter() - started
        dev_loss, dev_cer = evaluate(self.model, self.dev, options, device)
        if self.scheduler:
            self.scheduler.step(dev_loss)
        totals = self._sum_over_processes([loss_sum, utterances, audio_frames])
        return EpochResult(
            epoch=epoch + 1,
            train_loss=totals[0] / max(totals[1], 1),
            dev_loss=dev_loss,
            dev_cer=dev_cer,
            learning_rate=self.optimizer.param_groups[0]["lr"],
            skipped_batches=skipped,
            audio_seconds=totals[2] * self.train.store.meta["hop_ms"] / 1000,
            train_seconds=train_seconds,
        )

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether every process's loss is finite: a batch is skipped by all or by none."""
        finite = torch.tensor([1.0 if torch.isfinite(loss).item() else 0.0])
        if self.distributed.world > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    def _sum_over_processes(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64)
        if self.distributed.world > 1:
            dist.all_reduce(tensor)
        return tensor.tolist()


@contextmanager
def process_group() -> Iterator[None]:
    """Join the torchrun job if there is one: gloo on CPU, NCCL on CUDA."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        try:
            yield
        finally:
            dist.destroy_process_group()
    else:
        yield


def run(
    config: ModelConfig,
    options: TrainOptions,
    train_store: Store,
    dev_store: Store,
    state_dir: Path,
    on_epoch: Any = None,
) -> Trainer:
    """Train to ``options.epochs``, resuming from ``state_dir`` when it holds this run's state.

    ``on_epoch(entry)`` is called on the main process for every epoch of the history,
    restored ones first, so that loggers can rebuild their whole output after a resume.
    """
    train, dev = UtteranceSet(train_store), UtteranceSet(dev_store)
    if len(train) == 0 or len(dev) == 0:
        raise UserError("training needs transcribed utterances in both train and dev")
    with process_group():
        return _train(Trainer(config, options, train, dev), train_store, dev_store, state_dir, on_epoch)


def _train(trainer: Trainer, train_store: Store, dev_store: Store, state_dir: Path, on_epoch: Any) -> Trainer:
    config, options = trainer.config, trainer.options
    if config.normalization == "global":
        mean, std = global_statistics(train_store)
        trainer.model.input_mean.copy_(mean)
        trainer.model.input_std.copy_(std)
    state_path = state_dir / "last.pt"
    key = fingerprint(options, config, [train_store, dev_store])
    state = _saved_state(state_path, trainer.device, trainer.distributed.main)
    if state is not None and resumable(state, key, state_path, report=trainer.distributed.main):
        trainer.restore(state)
        if trainer.distributed.main:
            print(f"resuming after epoch {len(trainer.history)} from {state_path}")
    if trainer.distributed.main:
        chosen = " (train.precision: auto)" if options.precision == "auto" else ""
        print(f"training on {trainer.device.type} in {trainer.precision}{chosen}")
    if trainer.distributed.main and on_epoch is not None:
        for entry in trainer.history:
            on_epoch(entry)
    for epoch in range(len(trainer.history), options.epochs):
        result = trainer.train_epoch(epoch)
        entry = asdict(result)
        trainer.history.append(entry)
        if result.dev_cer < trainer.best["dev_cer"]:
            trainer.best = {"dev_cer": result.dev_cer, "epoch": result.epoch}
            trainer.best_state = {k: v.detach().clone().cpu() for k, v in trainer.model.state_dict().items()}
        if trainer.distributed.main:
            save_checkpoint(state_path, {**trainer.state(), "fingerprint": key})
            print(
                f"epoch {result.epoch}: train loss {result.train_loss:.3f}, dev loss {result.dev_loss:.3f}, "
                f"dev CER {result.dev_cer:.4f}, lr {result.learning_rate:.2e}, "
                f"{result.audio_seconds / result.train_seconds:.0f} audio-s/s"
            )
            if on_epoch is not None:
                on_epoch(entry)
    return trainer


def save_model(trainer: Trainer, path: Path, card: dict[str, Any]) -> None:
    """The best epoch's weights with the config that rebuilds them and the card that says how to feed them."""
    save_checkpoint(
        path, {"config": trainer.config.as_dict(), "state_dict": trainer.best_state, "card": card, **trainer.best}
    )


def discard_state(state_dir: Path) -> None:
    shutil.rmtree(state_dir, ignore_errors=True)


def training_metrics(trainer: Trainer, preset: str, wall_seconds: float) -> dict[str, Any]:
    """``metrics/train.json``: what was trained, how it ended, and how fast."""
    history = trainer.history
    return {
        "preset": preset,
        "parameters": parameter_count(trainer.model),
        "epochs": len(history),
        "best_epoch": trainer.best["epoch"],
        "best_dev_cer": round(trainer.best["dev_cer"], 5),
        "final_dev_loss": round(history[-1]["dev_loss"], 5),
        "skipped_batches": sum(entry["skipped_batches"] for entry in history),
        "wall_seconds": round(wall_seconds, 1),
        "train_audio_seconds_per_second": round(
            sum(e["audio_seconds"] for e in history) / sum(e["train_seconds"] for e in history), 1
        ),
        "device": trainer.device.type,
        "precision": trainer.precision,
        "processes": trainer.distributed.world,
        "threads": torch.get_num_threads(),
    }
