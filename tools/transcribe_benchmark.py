"""Real-time factor of `speechquant transcribe`, per variant and decoder, side by side.

    python tools/transcribe_benchmark.py [--preset paper] [--seconds 60] [--rounds 3]

Builds the preset's model (the weights do not change the time; the trained default model
can be given with --model instead), exports it, quantizes it to static int8 with
calibration on training utterances, writes a long WAV from dev corpus audio, and times
the whole command path (file reading, resampling, NumPy log-mel, ONNX Runtime on one
thread, decoding) in interleaved rounds. RTF = compute seconds / audio seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from speechquant.audio import SAMPLE_RATE
from speechquant.decode import Decoder, DecoderOptions
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import open_model
from speechquant.store import Store
from speechquant.transcribe import Transcriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--model", type=Path, help="an exported fp32 model instead of a fresh preset")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/dev"))
    parser.add_argument("--features", type=Path, default=Path("data/features/train"), help="for calibration")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = args.model or Path(scratch) / "fp32.onnx"
        if args.model is None:
            import torch

            from speechquant.export import export
            from speechquant.model import PRESETS, Wav2Letter

            torch.manual_seed(0)
            export(Wav2Letter(PRESETS[args.preset]).eval(), fp32)
        int8 = Path(scratch) / "static_int8.onnx"
        quantize("static_int8", fp32, int8, QuantOptions(), Store(args.features))
        audio = Path(scratch) / "long.wav"
        corpus, samples, index = Store(args.corpus), [], 0
        while sum(map(len, samples)) < args.seconds * SAMPLE_RATE:
            samples.append(np.asarray(corpus[index % len(corpus)], dtype=np.float32) / 32768.0)
            index += 1
        soundfile.write(audio, np.concatenate(samples)[: int(args.seconds * SAMPLE_RATE)], SAMPLE_RATE)
        runs = {
            (variant, method): Transcriber(open_model(path, threads=1), Decoder(DecoderOptions(method=method)))
            for variant, path in (("fp32", fp32), ("static_int8", int8))
            for method in ("greedy", "beam")
        }
        times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        for run in runs.values():  # warm-up
            run(audio)
        for _ in range(args.rounds):
            for key, run in runs.items():
                times[key].append(run(audio).compute_seconds)
    print(f"{args.model or args.preset + ' preset'}, {args.seconds:g} s of audio, 1 thread, median of {args.rounds}")
    for (variant, method), values in times.items():
        rtf = statistics.median(values) / args.seconds
        print(f"{variant:>12} {method:>6}: RTF {rtf:.4f}  ({statistics.median(values):.2f} s)")


if __name__ == "__main__":
    main()
