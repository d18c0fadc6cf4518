"""The `speechquant` command: `speechquant transcribe MODEL.onnx AUDIO...`.

Imports nothing heavier than onnxruntime, numpy, soundfile and soxr (plus flashlight-text
for beam search): a quantized model must run where PyTorch is not installed.

Exit status, so that a script can tell the cases apart: 0 every file transcribed; 1 some
files could not be read or were too short (each named on stderr, the others transcribed);
2 a bad model, language model or option (nothing transcribed); 3 an internal error on
some file (named on stderr, the others transcribed); 141 the output was closed early.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from speechquant.decode import LMS, MAX_BEAM, METHODS, Decoder, DecoderOptions
from speechquant.errors import UserError, exit_on_user_error
from speechquant.runtime import RUNTIMES, open_model
from speechquant.saturation import saturation_warning
from speechquant.text import NUM_CLASSES
from speechquant.transcribe import ChunkOptions, Transcriber

EXIT_OK, EXIT_BAD_FILE, EXIT_BAD_OPTIONS, EXIT_INTERNAL, EXIT_OUTPUT_CLOSED = 0, 1, 2, 3, 141


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
    transcribe.add_argument("--threads", type=int, default=1, help="the runtime's threads")
    transcribe.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="run the model in this runtime (default: the one its file names; onnxruntime unless it is bf16)",
    )
    transcribe.add_argument("--chunk-seconds", type=float, default=ChunkOptions.chunk_seconds)
    transcribe.add_argument("--context-seconds", type=float, default=ChunkOptions.context_seconds)
    return main


def _options(args: argparse.Namespace) -> tuple[DecoderOptions, ChunkOptions]:
    """The command's options, checked: a value that would crash, hang or quietly change the output is refused."""
    cores = os.cpu_count() or 1
    if not 1 <= args.threads <= cores:
        raise UserError(f"--threads must be between 1 and {cores} (this machine's cores), got {args.threads}")
    if not 1 <= args.beam_size <= MAX_BEAM:
        raise UserError(f"--beam-size must be between 1 and {MAX_BEAM}, got {args.beam_size}")
    if not (math.isfinite(args.lm_weight) and math.isfinite(args.word_score)):
        raise UserError("--lm-weight and --word-score must be finite numbers")
    try:
        decoding = DecoderOptions(
            method=args.method,
            beam_size=args.beam_size,
            lm=args.lm,
            lm_weight=args.lm_weight,
            word_score=args.word_score,
        )
        chunks = ChunkOptions(args.chunk_seconds, args.context_seconds)
    except ValueError as error:
        raise UserError(str(error)) from None
    return decoding, chunks


def _ready_decoder(options: DecoderOptions, lm_path: Path | None) -> Decoder:
    """A decoder whose language model is already read: a broken LM is one error, not one per file."""
    decoder = Decoder(options, lm_path)
    if options.method == "beam":
        try:
            decoder(np.full((2, NUM_CLASSES), -np.log(NUM_CLASSES), dtype=np.float32), 2)
        except UserError:
            raise
        except Exception as error:
            raise UserError(f"cannot use the language model {lm_path}: {str(error).strip()[:200]}") from None
    return decoder


def transcribe(args: argparse.Namespace) -> int:
    """Transcribe every file; one bad file is named on stderr and the others go on."""
    decoding, chunks = _options(args)
    lm_path = args.lm_path or (Path("models/lm") / f"{args.lm}.arpa" if args.lm != "none" else None)
    model = open_model(args.model, args.threads, args.runtime)
    warning = saturation_warning(model.path, model.runs_in.runtime)
    if warning:
        print(warning, file=sys.stderr)
    transcriber = Transcriber(model, _ready_decoder(decoding, lm_path), chunks)
    status = EXIT_OK
    for path in args.audio:
        try:
            result = transcriber(path)
        except UserError as error:
            status = max(status, EXIT_BAD_FILE)
            print(f"error: {error}", file=sys.stderr)
            continue
        except Exception as error:  # a bug of ours: named in one line, and the batch goes on
            status = EXIT_INTERNAL
            print(f"error: {path}: internal error ({type(error).__name__}: {str(error)[:200]})", file=sys.stderr)
            continue
        if result.non_finite_samples:
            print(
                f"warning: {path}: {result.non_finite_samples} NaN or infinite samples read as silence", file=sys.stderr
            )
        print(json.dumps(asdict(result), ensure_ascii=False) if args.json else result.text, flush=True)
    return status


def main() -> None:
    args = parser().parse_args()
    status = EXIT_BAD_OPTIONS

    def run() -> None:
        nonlocal status
        status = transcribe(args)

    try:
        exit_on_user_error(run)  # a bad model, LM or option: exit status 2
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as a program killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OUTPUT_CLOSED)
    sys.exit(status)


if __name__ == "__main__":
    main()
