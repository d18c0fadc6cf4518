"""Scoring an ONNX model on a split: CTC loss, CER, WER and the study's average Levenshtein.

The scores must not depend on the batch size (the study's did), so:

- utterances are sorted by length and batched; each one's outputs are cut to its own
  output length, and the model masks padding inside every layer;
- every run pads to at least ``MIN_PADDED_FRAMES``: ONNX Runtime's float GEMM blocks its
  inner dimension differently for short outputs (64 frames or fewer), which would
  change the last bits of a short utterance's log-probs with its neighbours' lengths;
- each run uses one intra-op thread (a split of one GEMM across threads also moves the
  last bits); batches run concurrently instead, one per worker;
- dynamically quantized models compute activation ranges over the whole batch, so one
  utterance would change another's result: they run one utterance at a time.

Decoding and the CTC loss run in worker processes, one per worker: flashlight's beam search
and the NumPy loss hold the GIL, so threads would take turns. Each utterance gets a fresh
search (``decode.Decoder``), so its result does not depend on which process decodes it.

Every utterance is scored: no partial batch is dropped. Utterances without a reference
(HW4P2's test split) are decoded, counted and left out of the scores.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from tqdm import tqdm

from speechquant.ctc_loss import ctc_loss
from speechquant.decode import LMS, Decoder, DecoderOptions
from speechquant.metrics import char_edits, error_rate, word_error_rate
from speechquant.params import Checked, limits, matrix_item, require_listed, section
from speechquant.runtime import open_model
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store, pad_rows
from speechquant.text import tokenize

MIN_PADDED_FRAMES = 256


@dataclass(frozen=True)
class EvalOptions(Checked):
    """How the evaluate stage runs; none of these may change a score."""

    splits: tuple[str, ...] = field(default=("dev", "test"), metadata=limits(choices=ALL_SPLITS))
    batch_size: int = field(default=32, metadata=limits(1, 100_000))
    workers: int = field(default=0, metadata=limits(0, 1024))  # concurrent single-threaded runs; 0: one per core

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass
class UtteranceResult:
    id: str
    reference: str | None
    hypothesis: str
    edits: int | None
    frames: int
    ctc_loss: float | None


def batch_dependent(path: Path) -> bool:
    """Whether the model quantizes activations with ranges taken over the whole batch."""
    return any(node.op_type == "DynamicQuantizeLinear" for node in onnx.load(str(path)).graph.node)


def model_outputs(
    model: ort.InferenceSession,
    store: Store,
    batch_size: int,
    workers: int = 1,
    progress: str | None = None,
    only: list[int] | None = None,
) -> tuple[list[np.ndarray], float]:
    """Each utterance's log-probs (its own output frames only), in store order, and wall seconds.

    ``only`` runs just those store indices and returns their outputs in its order.
    """
    lengths = np.diff(store.offsets)
    chosen = np.arange(len(store)) if only is None else np.asarray(sorted(only), dtype=np.int64)
    order = chosen[np.argsort(lengths[chosen], kind="stable")]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

    def run(indices: np.ndarray) -> list[tuple[int, np.ndarray]]:
        features, lengths = pad_rows([np.asarray(store[int(i)], dtype=np.float32) for i in indices], MIN_PADDED_FRAMES)
        log_probs, output_lengths = model.run(None, {"features": features, "lengths": lengths})
        return [(int(i), log_probs[row, : int(output_lengths[row])]) for row, i in enumerate(indices)]

    outputs: list[np.ndarray] = [np.empty(0)] * len(store)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(run, batches)
        for pairs in tqdm(done, total=len(batches), desc=progress, disable=progress is None, leave=False):
            for index, log_probs in pairs:
                outputs[index] = log_probs
    seconds = time.perf_counter() - started
    return (outputs if only is None else [outputs[i] for i in only]), seconds


def evaluate_split(
    model_path: Path, store: Store, decoder: Decoder, options: EvalOptions, name: str | None = None
) -> tuple[dict[str, Any], list[UtteranceResult]]:
    """Metrics of one split and the per-utterance results behind them; an empty split (an
    out-of-domain set a source does not have) scores nothing and runs nothing."""
    if len(store) == 0:
        return {**scores([]), "batch_size": options.batch_size, "model_seconds": 0.0, "decode_seconds": 0.0}, []
    model = open_model(model_path, threads=1, concurrent=options.worker_count())
    model.check_features(store)
    batch_size = 1 if batch_dependent(model_path) else options.batch_size
    progress = name and f"{name} model"
    outputs, model_seconds = model_outputs(model.session, store, batch_size, options.worker_count(), progress)
    started = time.perf_counter()
    references = [utterance.text for utterance in store.utterances]
    decoded = tqdm(
        decode_and_score(decoder, references, outputs, options.worker_count()),
        total=len(outputs),
        desc=name and f"{name} decode",
        disable=name is None,
        leave=False,
    )
    results = [
        UtteranceResult(
            id=utterance.id,
            reference=utterance.text,
            hypothesis=hypothesis,
            edits=char_edits(utterance.text, hypothesis) if utterance.text is not None else None,
            frames=utterance.n_frames,
            ctc_loss=loss,
        )
        for utterance, (hypothesis, loss) in zip(store.utterances, decoded, strict=True)
    ]
    decode_seconds = time.perf_counter() - started
    metrics = scores(results)
    metrics.update(
        batch_size=batch_size,
        model_seconds=round(model_seconds, 3),
        decode_seconds=round(decode_seconds, 3),
        decoded_per_second=round(len(results) / decode_seconds, 1) if decode_seconds > 0 else None,
    )
    return metrics, results


_worker_decoder: Decoder | None = None  # a decoding process's own, made by _start_decoding


def _start_decoding(options: DecoderOptions, lm_path: Path | None) -> None:
    global _worker_decoder
    _worker_decoder = Decoder(options, lm_path)


def _decode_in_worker(item: tuple[str | None, np.ndarray]) -> tuple[str, float | None]:
    assert _worker_decoder is not None
    return decode_one(_worker_decoder, *item)


def decode_one(decoder: Decoder, reference: str | None, log_probs: np.ndarray) -> tuple[str, float | None]:
    """One utterance's hypothesis and, where it has a reference, its CTC loss."""
    loss = ctc_loss(log_probs.astype(np.float64), tokenize(reference)) if reference is not None else None
    return decoder(log_probs, len(log_probs)), loss


def decode_and_score(
    decoder: Decoder, references: list[str | None], outputs: list[np.ndarray], workers: int
) -> Iterator[tuple[str, float | None]]:
    """``decode_one`` of every utterance, in order, in ``workers`` processes (in this one for 1)."""
    items = zip(references, outputs, strict=True)
    if workers <= 1 or len(outputs) <= 1:
        yield from (decode_one(decoder, reference, log_probs) for reference, log_probs in items)
        return
    # spawn, not fork: this process has ONNX Runtime's and the model runs' threads.
    context = multiprocessing.get_context("spawn")
    chunk = max(1, len(outputs) // (workers * 8))
    initargs = (decoder.options, decoder.lm_path)
    with ProcessPoolExecutor(workers, context, initializer=_start_decoding, initargs=initargs) as pool:
        yield from pool.map(_decode_in_worker, items, chunksize=chunk)


def scores(results: list[UtteranceResult]) -> dict[str, Any]:
    """CER, WER, average Levenshtein and mean CTC loss over the utterances with a reference."""
    scored = [r for r in results if r.reference is not None]
    references = [r.reference for r in scored]
    hypotheses = [r.hypothesis for r in scored]
    losses = [r.ctc_loss for r in scored if r.ctc_loss is not None and math.isfinite(r.ctc_loss)]
    return {
        "utterances": len(results),
        "scored": len(scored),
        "unscored_without_reference": len(results) - len(scored),
        "cer": round(error_rate(references, hypotheses), 6) if scored else None,
        "wer": round(word_error_rate(references, hypotheses), 6) if scored else None,
        "levenshtein_mean": round(float(np.mean([r.edits for r in scored])), 4) if scored else None,
        "ctc_loss": round(float(np.mean(losses)), 4) if losses else None,
        "ctc_loss_infeasible": len(scored) - len(losses),  # too few frames for the transcript
    }


def result_rows(results: list[UtteranceResult]) -> list[dict[str, Any]]:
    """Per-utterance rows for the plot data, text fields last so the CSV stays readable."""
    return [
        {
            "id": r.id,
            "frames": r.frames,
            "edits": "" if r.edits is None else r.edits,
            "ctc_loss": "" if r.ctc_loss is None else round(r.ctc_loss, 4),
            "reference": r.reference or "",
            "hypothesis": r.hypothesis,
        }
        for r in results
    ]


def summary_line(name: str, split: str, m: dict[str, Any]) -> str:
    return (
        f"{name} {split}: CER {m['cer']} WER {m['wer']} Levenshtein {m['levenshtein_mean']} "
        f"CTC loss {m['ctc_loss']} ({m['scored']}/{m['utterances']} scored; model {m['model_seconds']} s, "
        f"decode {m['decoded_per_second']} utt/s)"
    )


LM_LEVELS = [lm for lm in LMS if lm != "none"]


def what_to_evaluate(variant: str | None, lm: str | None, params: dict) -> tuple[str, str | None]:
    """The variant and LM of the command line, or of the DVC stage being run; each checked against params."""
    if variant is None:
        if os.environ.get("DVC_STAGE", "").partition("@")[0].endswith("evaluate_lm"):
            variant, _, lm = matrix_item(None, "evaluate_lm").rpartition("-")
            require_listed(variant, section(params, "eval_lm")["variants"], "eval_lm.variants")
            require_listed(lm, section(params, "eval_lm")["lms"], "eval_lm.lms")
            require_listed(lm, LM_LEVELS, "the LMs the lm stage builds")
        else:
            variant = matrix_item(None, "evaluate")
    return require_listed(variant, section(params, "quant")["variants"], "quant.variants"), lm
