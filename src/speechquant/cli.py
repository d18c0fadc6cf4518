"""The `speechquant` command: `speechquant transcribe MODEL.onnx AUDIO...`.

Imports nothing heavier than onnxruntime, numpy, soundfile and soxr (plus flashlight-text
for beam search): a quantized model must run where PyTorch is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from speechquant.decode import LMS, METHODS, Decoder, DecoderOptions
from speechquant.errors import UserError, exit_on_user_error
from speechquant.runtime import open_model
from speechquant.transcribe import ChunkOptions, Transcriber


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="speechquant", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)
    transcribe = commands.add_parser("transcribe", help="print one transcript per audio file")
    transcribe.add_argument("model", type=Path, help="an exported or quantized model (.onnx)")
    transcribe.add_argument("audio", type=Path, nargs="+", help="WAV/FLAC/... files, any sample rate and channels")
    transcribe.add_argument("--json", action="store_true", help="JSON lines: file, text, audio and compute seconds")
    defaults = DecoderOptions()
    transcribe.add_argument("--method", choices=METHODS, default=defaults.method)
    transcribe.add_argument("--beam-size", type=int, default=defaults.beam_size)
    transcribe.add_argument("--lm", choices=LMS, default=defaults.lm)
    transcribe.add_argument("--lm-path", type=Path, help="the ARPA file of --lm (default models/lm/<lm>.arpa)")
    transcribe.add_argument("--lm-weight", type=float, default=defaults.lm_weight)
    transcribe.add_argument("--word-score", type=float, default=defaults.word_score)
    transcribe.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    transcribe.add_argument("--chunk-seconds", type=float, default=ChunkOptions.chunk_seconds)
    transcribe.add_argument("--context-seconds", type=float, default=ChunkOptions.context_seconds)
    return main


def transcribe(args: argparse.Namespace) -> int:
    try:
        options = DecoderOptions(
            method=args.method,
            beam_size=args.beam_size,
            lm=args.lm,
            lm_weight=args.lm_weight,
            word_score=args.word_score,
        )
        chunks = ChunkOptions(args.chunk_seconds, args.context_seconds)
    except ValueError as error:
        raise UserError(str(error)) from None
    lm_path = args.lm_path or (Path("models/lm") / f"{args.lm}.arpa" if args.lm != "none" else None)
    transcriber = Transcriber(open_model(args.model, args.threads), Decoder(options, lm_path), chunks)
    failed = 0
    for path in args.audio:
        try:
            result = transcriber(path)
        except UserError as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
            continue
        except (OSError, RuntimeError, ValueError) as error:  # soundfile's and soxr's errors for unreadable files
            failed += 1
            print(f"error: {path}: cannot read audio ({str(error).strip()[:200]})", file=sys.stderr)
            continue
        print(json.dumps(asdict(result), ensure_ascii=False) if args.json else result.text, flush=True)
    return 1 if failed else 0


def main() -> None:
    args = parser().parse_args()
    status = 0

    def run() -> None:
        nonlocal status
        status = transcribe(args)

    exit_on_user_error(run)
    sys.exit(status)


if __name__ == "__main__":
    main()
