"""Where one training step's time goes, and how close its forward pass comes to the CPU's matmul rate.

    python tools/train_step_profile.py [--batch-frames 8000] [--batches 6] [--output reports/train_step_profile.json]

The train and compress stages spend their time in steps like this one (the trained model in
training mode, the precision ``train.precision: auto`` picks, AdamW and gradient clipping as they
run them). Whether a step is bound by the convolutions' arithmetic or by what surrounds them
decides what can shorten a stage: overhead can be cut at the same result, arithmetic only by
fewer multiply-accumulates or fewer steps. So the tool reports each part's time per step, the
convolutions' share of it by ``torch.profiler``, and the forward pass's rate against a large
matmul in the same precision on the same threads. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speechquant.batching import Batch, UtteranceSet
from speechquant.ctc import output_frames
from speechquant.hardware import hardware_stamp
from speechquant.model import load_model
from speechquant.peak import macs_per_output_frame
from speechquant.store import Store
from speechquant.train import TrainOptions, autocast, ctc_loss_sum, resolve_precision

PARTS = ("forward", "ctc", "backward", "clip", "adamw")
MATMUL_SIZE = 2048


def matmul_gflops(dtype: torch.dtype, size: int = MATMUL_SIZE, rounds: int = 10) -> float:
    """Best-round rate of a size³ matmul in ``dtype`` on PyTorch's threads."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, options: TrainOptions) -> dict[str, float]:
    """One training step as the train stage takes it, each part timed."""
    seconds: dict[str, float] = {}

    def timed(part: str, run: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = run()
        seconds[part] = time.perf_counter() - started
        return result

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(options, torch.device("cpu")):
            return model(batch.features, batch.lengths)

    log_probs, lengths = timed("forward", forward)
    loss = timed("ctc", lambda: ctc_loss_sum(log_probs, lengths, batch) / len(batch.indices))
    optimizer.zero_grad(set_to_none=True)
    timed("backward", loss.backward)
    timed("clip", lambda: nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip))
    timed("adamw", optimizer.step)
    return seconds


def conv_share(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, options: TrainOptions) -> float:
    """The convolutions' share (forward and backward) of one step's operator time, by torch.profiler."""
    with torch.profiler.profile() as profile:
        step(model, optimizer, batch, options)
    events = profile.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    conv = sum(event.self_cpu_time_total for event in events if "convolution" in event.key)
    return conv / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"), help="for its MACs per frame")
    parser.add_argument("--features", type=Path, default=Path("data/features/train"))
    parser.add_argument("--batch-frames", type=int, default=8000)
    parser.add_argument("--batches", type=int, default=6, help="timed batches, after one warm-up batch")
    parser.add_argument("--output", type=Path, help="also write the result here, as JSON with the machine's stamp")
    args = parser.parse_args()
    data = UtteranceSet(Store(args.features))
    positions = data.batches(args.batch_frames, seed=0, epoch=0, shuffle=True)[: args.batches + 1]
    batches = [data.collate(p) for p in positions]
    options = TrainOptions(precision="auto", device="cpu")
    precision = resolve_precision(options.precision, torch.device("cpu"))
    model = load_model(args.checkpoint).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)  # tiny: the model stays what it was
    parts = {part: 0.0 for part in PARTS}
    computed = 0
    for index, batch in enumerate(batches):
        seconds = step(model, optimizer, batch, options)
        if index:  # the first batch warms up
            parts = {part: parts[part] + seconds[part] for part in PARTS}
            computed += output_frames(batch.features.shape[1]) * batch.features.shape[0]  # padding is computed too
    share = conv_share(model, optimizer, batches[-1], options)
    macs = macs_per_output_frame(args.model)
    forward_gflops = 2 * macs * computed / parts["forward"] / 1e9
    matmul = matmul_gflops(torch.bfloat16 if precision == "bf16" else torch.float32)
    milliseconds = {part: round(1000 * value / args.batches, 1) for part, value in parts.items()}
    report = {
        "command": f"python tools/train_step_profile.py --batch-frames {args.batch_frames} --batches {args.batches}",
        "machine": {**hardware_stamp(), "threads": torch.get_num_threads()},
        "precision": precision,
        "batch_frames": args.batch_frames,
        "step_ms": round(sum(milliseconds.values()), 1),
        "part_ms": milliseconds,
        "conv_share": round(share, 3),
        "macs_per_output_frame": macs,
        "forward_gflops": round(forward_gflops, 1),
        "matmul_gflops": round(matmul, 1),
    }
    print(json.dumps(report, indent=1))
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
