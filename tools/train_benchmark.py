"""Training throughput of each preset and precision, measured side by side.

    python tools/train_benchmark.py [--features data/features/train] [--rounds 3] [--device cuda]
                                    [--output reports/train_benchmark_<where>.json]

Runs real training steps (forward, CTC loss, backward, AdamW) on real length-bucketed
batches. Configurations are interleaved round by round after a warm-up, so that a noisy
shared machine slows them all alike; ratios are to the default preset in fp32. On CUDA the
batches wait on the GPU before the clock starts, so the figure excludes data loading: an
upper bound on what the train stage reaches there. With ``--output`` the table is also written
as JSON with the machine's stamp: ``train.precision: auto`` (``train.resolve_precision``) rests
on such measurements.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from speechquant.batching import UtteranceSet
from speechquant.hardware import hardware_stamp
from speechquant.model import PRESETS, Wav2Letter
from speechquant.store import Store
from speechquant.train import TrainOptions, autocast, ctc_loss_sum, to_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=Path("data/features/train"))
    parser.add_argument("--batch-frames", type=int, default=8000)
    parser.add_argument("--batches", type=int, default=4, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--output", type=Path, help="also write the table here, as JSON with the machine's stamp")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = UtteranceSet(Store(args.features))
    positions = data.batches(args.batch_frames, seed=0, epoch=0, shuffle=True)[: args.batches]
    batches = [to_device(data.collate(p), device) for p in positions]
    audio_seconds = sum(float(b.lengths.sum()) for b in batches) * data.store.meta["hop_ms"] / 1000
    runs = {}
    for preset in ("default", "paper"):
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = Wav2Letter(PRESETS[preset]).to(device).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            runs[(preset, precision)] = (model, optimizer, TrainOptions(precision=precision, device=args.device))
    speeds: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for key, (model, optimizer, options) in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            for batch in batches:
                with autocast(options, device):
                    log_probs, lengths = model(batch.features, batch.lengths)
                loss = ctc_loss_sum(log_probs, lengths, batch) / len(batch.indices)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_index:
                speeds[key].append(audio_seconds / (time.perf_counter() - started))
    reference = statistics.median(speeds[("default", "fp32")])
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"{where}, {len(batches)} batches of <= {args.batch_frames} frames per round")
    print(f"{'preset':<8} {'precision':<9} {'audio-s/s':>10} {'vs default fp32':>16}")
    rows = []
    for (preset, precision), values in speeds.items():
        median = statistics.median(values)
        print(f"{preset:<8} {precision:<9} {median:>10.1f} {median / reference:>15.2f}x")
        rows.append(
            {
                "preset": preset,
                "precision": precision,
                "audio_seconds_per_second": round(median, 1),
                "of_default_fp32": round(median / reference, 2),
            }
        )
    if args.output:
        machine = {**hardware_stamp(), "where": where}
        command = f"python tools/train_benchmark.py --rounds {args.rounds} --batches {args.batches}"
        report = {"command": f"{command} --device {args.device}", "machine": machine, "rows": rows}
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
