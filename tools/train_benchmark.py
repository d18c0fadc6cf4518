"""Training throughput of each preset and precision, measured side by side.

    python tools/train_benchmark.py [--features data/features/train] [--rounds 3]

Runs real training steps (forward, CTC loss, backward, AdamW) on real length-bucketed
batches. Configurations are interleaved round by round after a warm-up, so that a noisy
shared machine slows them all alike; ratios are to the default preset in fp32.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from speechquant.batching import UtteranceSet
from speechquant.model import PRESETS, Wav2Letter
from speechquant.store import Store
from speechquant.train import TrainOptions, autocast, ctc_loss_sum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=Path("data/features/train"))
    parser.add_argument("--batch-frames", type=int, default=8000)
    parser.add_argument("--batches", type=int, default=4, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = UtteranceSet(Store(args.features))
    batches = [data.collate(p) for p in data.batches(args.batch_frames, seed=0, epoch=0, shuffle=True)[: args.batches]]
    audio_seconds = sum(float(b.lengths.sum()) for b in batches) * data.store.meta["hop_ms"] / 1000
    runs = {}
    for preset in ("default", "paper"):
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = Wav2Letter(PRESETS[preset]).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            runs[(preset, precision)] = (model, optimizer, TrainOptions(precision=precision, device="cpu"))
    speeds: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for key, (model, optimizer, options) in runs.items():
            started = time.perf_counter()
            for batch in batches:
                with autocast(options, torch.device("cpu")):
                    log_probs, lengths = model(batch.features, batch.lengths)
                loss = ctc_loss_sum(log_probs, lengths, batch) / len(batch.indices)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if round_index:
                speeds[key].append(audio_seconds / (time.perf_counter() - started))
    reference = statistics.median(speeds[("default", "fp32")])
    print(f"{torch.get_num_threads()} threads, {len(batches)} batches of <= {args.batch_frames} frames per round")
    print(f"{'preset':<8} {'precision':<9} {'audio-s/s':>10} {'vs default fp32':>16}")
    for (preset, precision), values in speeds.items():
        median = statistics.median(values)
        print(f"{preset:<8} {precision:<9} {median:>10.1f} {median / reference:>15.2f}x")


if __name__ == "__main__":
    main()
