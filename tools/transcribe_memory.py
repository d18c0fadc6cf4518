"""Peak memory of `speechquant transcribe` on long files of hostile content, per decoder.

    python tools/transcribe_memory.py [--model models/quantized/static_int8.onnx] [--hours 1]

Writes one file per content (white noise, digital silence, a constant DC offset, a pure
tone at Nyquist, near-silence with one loud burst, dev speech looped) of ``--hours`` of
16 kHz int16 audio, a block at a time, then runs the command on each in a fresh process,
greedy and beam, and reads the child's peak resident memory from the kernel
(``wait4``'s ``ru_maxrss``). The target is a peak that does not grow with the file:
at most ``--limit-mb`` (400) for a one-hour file, whatever its content.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile

from speechquant.audio import SAMPLE_RATE
from speechquant.store import Store

BLOCK_SECONDS = 60


def _blocks(seconds: float, make: Callable[[int, np.random.Generator], np.ndarray]) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(0)
    total = int(seconds * SAMPLE_RATE)
    for start in range(0, total, BLOCK_SECONDS * SAMPLE_RATE):
        yield make(start, rng)[: total - start]


def contents(corpus: Path) -> dict[str, Callable[[int, np.random.Generator], np.ndarray]]:
    """Block makers (start sample, rng) -> one block of float samples in [-1, 1]."""
    block = BLOCK_SECONDS * SAMPLE_RATE
    makers: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
        "noise": lambda start, rng: rng.uniform(-0.5, 0.5, block),
        "silence": lambda start, rng: np.zeros(block),
        "dc_offset": lambda start, rng: np.full(block, 0.3),
        "nyquist_tone": lambda start, rng: 0.3 * (-1.0) ** np.arange(block),
        "quiet_with_burst": lambda start, rng: (
            rng.uniform(-0.9, 0.9, block) if start == 30 * block else rng.uniform(-1e-4, 1e-4, block)
        ),
    }
    if (corpus / "offsets.npy").is_file():
        store = Store(corpus)
        speech = np.concatenate([np.asarray(store[i], dtype=np.float32) / 32768 for i in range(min(len(store), 60))])
        makers["speech_looped"] = lambda start, rng: np.resize(np.roll(speech, -(start % len(speech))), block)
    return makers


def write(path: Path, seconds: float, make: Callable[[int, np.random.Generator], np.ndarray]) -> None:
    with soundfile.SoundFile(str(path), "w", SAMPLE_RATE, 1, subtype="PCM_16") as file:
        for block in _blocks(seconds, make):
            file.write(block.astype(np.float32))


def peak_of(command: list[str]) -> tuple[float, float, int]:
    """(peak resident MB, wall seconds, exit status) of one run in a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.stderr.write(process.stderr.read().decode(errors="replace") if process.stderr else "")
    return usage.ru_maxrss / 1024, time.perf_counter() - started, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/quantized/static_int8.onnx"))
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/dev"), help="speech to loop, if present")
    parser.add_argument("--limit-mb", type=float, default=400.0)
    parser.add_argument("--only", nargs="*", help="contents to run (default: all)")
    args = parser.parse_args()
    if not args.model.is_file():
        sys.exit(f"error: {args.model} not found: run `dvc repro quantize` or give --model")
    makers = contents(args.corpus)
    failed = False
    print(f"{args.model}, {args.hours:g} h per file, 1 thread; peak resident memory of the whole process")
    with tempfile.TemporaryDirectory() as scratch:
        for name, make in makers.items():
            if args.only and name not in args.only:
                continue
            audio = Path(scratch) / f"{name}.wav"
            write(audio, args.hours * 3600, make)
            for method in ("greedy", "beam"):
                command = [sys.executable, "-m", "speechquant.cli", "transcribe", str(args.model), str(audio)]
                command += ["--method", method]
                peak, seconds, status = peak_of(command)
                verdict = "ok" if peak <= args.limit_mb and status == 0 else "OVER" if status == 0 else f"exit {status}"
                failed |= verdict != "ok"
                print(f"{name:>17} {method:>6}: {peak:7.0f} MB  {seconds:6.1f} s  {verdict}", flush=True)
            audio.unlink()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
