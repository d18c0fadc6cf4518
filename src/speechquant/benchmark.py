"""Latency, memory and size of every variant, measured side by side in one process.

This machine is shared and noisy, so ratios are only fair when the variants are timed
under the same conditions: every configuration runs all variants in interleaved
rounds (each round times each variant once, in an order rotated from round to round)
after warm-up calls, and the ratios to fp32 are taken within the configuration.

Many sessions share one process, so only the one being timed may hold the cores: ONNX
Runtime's pools do not spin between runs, PyTorch's OpenMP threads wait passively. Two
controls say how far to trust a ratio: an A/A pair (the fp32 model as a second, separate
session, whose ratio to the first should be 1) and, for every speed-up, a 95% interval
from resampling the rounds.
"""

from __future__ import annotations

import functools
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from speechquant.ctc import LAYER_NAMES
from speechquant.errors import UserError
from speechquant.fileio import size_mb
from speechquant.hardware import hardware_stamp
from speechquant.openvino_session import NotRunnableHere, OpenVinoSession
from speechquant.params import Checked, limits
from speechquant.peak import gemm_runner, gmacs, layer_macs, share_of_peak
from speechquant.runtime import RUNTIMES, RunsIn, open_model, runs_in, session
from speechquant.store import Store
from speechquant.timing import paired_speedup, time_interleaved

# The row of the PyTorch checkpoint run eagerly in fp32, timed beside the ONNX variants.
PYTORCH = "pytorch_fp32"
# The A/A control: the reference model as a second, separate session.
AA_CONTROL = "fp32_again"
# ONNX Runtime's one-core GEMMs, timed in the one-thread rounds: the peak each share is taken to.
GEMMS = {"gemm_fp32": ("fp32_gmacs", False), "gemm_int8": ("int8_gmacs", True)}

OPENVINO = "openvino:"  # the prefix of an OpenVINO row's name while it is timed


@dataclass(frozen=True)
class BenchmarkOptions(Checked):
    """What to time. ``threads`` 0 means one per CPU core."""

    batches: tuple[int, ...] = field(default=(1, 4, 32), metadata=limits(1, 4096))  # at the middle audio length
    seconds: tuple[float, ...] = field(default=(2.0, 5.0, 10.0), metadata=limits(above=0, high=3600))  # at batch 1
    threads: tuple[int, ...] = field(default=(1, 0), metadata=limits(0, 1024))
    rounds: int = field(default=6, metadata=limits(1, 10_000))
    warmup: int = field(default=1, metadata=limits(0, 10_000))
    pytorch: bool = True  # time the PyTorch eager fp32 model as a reference row
    # Runtimes every ONNX Runtime variant is timed in, side by side. A variant made for
    # OpenVINO (bf16) is timed in it alone, as its own row, whatever this says.
    runtimes: tuple[str, ...] = field(default=RUNTIMES, metadata=limits(choices=RUNTIMES))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.batches or not self.seconds or not self.threads:
            raise ValueError("batches, seconds and threads must each list at least one value")
        if "onnxruntime" not in self.runtimes:
            raise ValueError("runtimes must include onnxruntime: every ratio is taken to its fp32 session")

    @property
    def middle_seconds(self) -> float:
        """The audio length of the batch sweep."""
        return sorted(self.seconds)[len(self.seconds) // 2]

    def configurations(self) -> list[tuple[int, float]]:
        """(batch, seconds): the batch sweep at the middle length, the length sweep at batch 1."""
        pairs = [(batch, self.middle_seconds) for batch in self.batches] + [(1, seconds) for seconds in self.seconds]
        return sorted(set(pairs))


def thread_count(threads: int) -> int:
    return threads or os.cpu_count() or 1


def configuration_key(batch: int, seconds: float, threads: int) -> str:
    """How ``metrics/benchmark.json`` names a configuration, e.g. ``batch1_10s_1thread``."""
    return f"batch{batch}_{seconds:g}s_{'all' if threads == 0 else threads}thread"


def benchmark_inputs(store: Store, batch: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` real dev utterances, each tiled or cut to exactly ``seconds`` of audio at the store's hop."""
    frames = round(seconds * 1000 / store.meta["hop_ms"])
    rows = []
    for index in range(batch):
        utterance = np.asarray(store[index % len(store)], dtype=np.float32)
        repeats = -(-frames // len(utterance))
        rows.append(np.tile(utterance, (repeats, 1))[:frames])
    return np.stack(rows), np.full(batch, frames, dtype=np.int64)


def onnx_runner(path: Path, threads: int) -> tuple[Callable[[np.ndarray, np.ndarray], Any], float]:
    """A function running the model, and the seconds its session took to create."""
    started = time.perf_counter()
    model = session(path, threads=thread_count(threads), spinning=False)
    created = time.perf_counter() - started
    return (lambda features, lengths: model.run(None, {"features": features, "lengths": lengths})), created


def openvino_runner(
    path: Path, threads: int, precision: str
) -> tuple[Callable[[np.ndarray, np.ndarray], Any], dict[str, dict[str, int]]]:
    """The ONNX file compiled by OpenVINO's CPU plugin at ``precision`` (f32 or bf16; int8 QDQ
    files run as int8 either way), and its convolutions counted by the precision and primitive
    they run in (from the compiled model, not from the CPU's flags)."""
    model = OpenVinoSession(path, thread_count(threads), precision)
    return (lambda features, lengths: model.run(None, {"features": features, "lengths": lengths})), model.kernels


def openvino_rows(
    paths: dict[str, Path], threads: int, info: dict[str, Any]
) -> dict[str, Callable[[np.ndarray, np.ndarray], Any]]:
    """OpenVINO's runner for every ONNX Runtime variant it compiles, at f32 inference precision
    so that its fp32 row does the same arithmetic as ONNX Runtime's (int8 files run int8 either
    way). What cannot run is skipped, with its reason in ``info`` and one line on the output,
    and the others still run."""
    import openvino

    info["version"] = openvino.__version__
    runners = {}
    for name, path in paths.items():
        if name in info["skipped"]:
            continue
        try:
            runners[OPENVINO + name], info["kernels"][name] = openvino_runner(path, threads, "f32")
        except NotRunnableHere as error:
            info["skipped"][name] = str(error)
            tqdm.write(f"warning: OpenVINO cannot run {name}, skipped: {error}")
    return runners


def openvino_metrics(latency: dict[str, dict[str, dict]], info: dict[str, Any]) -> dict[str, Any]:
    """The OpenVINO rows apart from ONNX Runtime's: per variant its latency and the precision and
    primitive its convolutions ran in; what was skipped, with why; and whether any convolution
    ran on AMX, read from the primitives oneDNN chose."""
    rows = {
        name.removeprefix(OPENVINO): {**info["kernels"][name.removeprefix(OPENVINO)], "latency": per_key}
        for name, per_key in latency.items()
        if name.startswith(OPENVINO)
    }
    primitives = {primitive for kernels in info["kernels"].values() for primitive in kernels["primitives"]}
    return {
        "version": info.get("version"),
        "rows": rows,
        "skipped": info["skipped"],
        "amx_used": any("amx" in primitive for primitive in primitives),
    }


def pytorch_runner(checkpoint: Path, threads: int) -> tuple[Callable[[np.ndarray, np.ndarray], Any], float]:
    """The trained model in PyTorch eager mode, fp32, batch norm folded like the export."""
    # Before torch loads OpenMP: its threads sleep between calls instead of spinning on the
    # cores the ONNX sessions timed next need (no effect when torch was imported earlier).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from speechquant.export import fold_batch_norm
    from speechquant.model import load_model

    torch.set_num_threads(thread_count(threads))
    started = time.perf_counter()
    model = fold_batch_norm(load_model(checkpoint)).eval()
    created = time.perf_counter() - started

    def run(features: np.ndarray, lengths: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(features), torch.from_numpy(lengths))

    return run, created


def latency_summary(times: list[float], batch: int, seconds: float) -> dict[str, float]:
    p50, p90 = np.percentile(times, [50, 90])
    return {
        "latency_ms_p50": round(float(p50) * 1000, 3),
        "latency_ms_p90": round(float(p90) * 1000, 3),
        "rtf": round(float(p50) / (batch * seconds), 6),  # compute seconds per audio second
    }


def _peak_memory_child(path: str, threads: int, batch: int, seconds: float, store_path: str) -> None:
    """Runs in a fresh interpreter: one batch through the model (none when ``path`` is empty)."""
    inputs = benchmark_inputs(Store(store_path), batch, seconds)
    if path:
        model = open_model(Path(path), thread_count(threads)).session  # in the runtime the file names
        model.run(None, {"features": inputs[0], "lengths": inputs[1]})
    print(_peak_rss_kb())


def _peak_rss_kb() -> int:
    """This process's peak resident memory. ``VmHWM`` rather than ``ru_maxrss``: Linux keeps
    ``ru_maxrss`` across exec, so a child of a big parent would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory_mb(path: Path, threads: int, batch: int, seconds: float, store: Store) -> dict[str, float]:
    """Peak resident memory of a fresh interpreter that loads the model and runs one batch.

    A fresh process, so each variant's peak is its own and not the high-water mark of
    everything timed before it; ``added_by_model_mb`` subtracts the same process run
    without a model (interpreter, libraries and inputs).
    """

    def peak_kb(model: str) -> int:
        arguments = f"{model!r}, {threads}, {batch}, {seconds}, {str(store.path)!r}"
        code = f"from speechquant.benchmark import _peak_memory_child as c; c({arguments})"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"measuring the memory of {model or 'no model'} failed: {result.stderr[-500:]}")
        return int(result.stdout.split()[-1])

    peak, baseline = peak_kb(str(path)), peak_kb("")
    return {"peak_rss_mb": round(peak / 1024, 1), "added_by_model_mb": round((peak - baseline) / 1024, 1)}


REFERENCE = "fp32"  # every ratio is taken to it


def run_benchmark(
    options: BenchmarkOptions,
    paths: dict[str, Path],
    checkpoint: Path,
    store: Store,
    float_layers: dict[str, list[str]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every variant's (and PyTorch's) latency per configuration, interleaved in rounds, then
    each ONNX variant's peak memory in a fresh process: ``metrics/benchmark.json`` and the
    latency-vs-batch plot rows. ``float_layers``: the layers each variant keeps in float, for
    its share of the machine's measured one-core peak (``peak.py``) in the one-thread rows."""
    if REFERENCE not in paths:
        raise UserError(f"the benchmark needs {REFERENCE!r} in quant.variants: every ratio is taken to it")
    made_for = {variant: runs_in(path) for variant, path in paths.items()}
    in_ort = {variant: path for variant, path in paths.items() if made_for[variant] == RunsIn()}
    own_runtime = {variant: path for variant, path in paths.items() if variant not in in_ort}  # bf16
    hardware = {**hardware_stamp(), "threads_all": thread_count(0)}
    peaks: dict[str, dict[str, float]] = {}  # per one-thread configuration, measured in its rounds
    openvino_info: dict[str, Any] = {"kernels": {}, "skipped": {}}
    not_run: dict[str, str] = {}  # variants made for a runtime or precision this machine cannot run
    kernels: dict[str, dict] = {}  # what the convolutions of those made for OpenVINO ran in
    in_ort_float = {variant: layers for variant, layers in float_layers.items() if variant in in_ort}
    all_float = {  # no bf16 peak is measured, so the bf16 variant has no share of one
        PYTORCH: list(LAYER_NAMES),
        AA_CONTROL: list(LAYER_NAMES),
        **in_ort_float,
        **{OPENVINO + variant: layers for variant, layers in in_ort_float.items()},
    }
    latency: dict[str, dict[str, dict]] = {}
    controls: dict[str, dict[str, Any]] = {}
    one_thread: dict[str, tuple[int, int]] = {}
    session_seconds: dict[str, float] = {}
    steps = [(t, b, s) for t in options.threads for b, s in options.configurations()]
    for threads, batch, seconds in tqdm(steps, desc="benchmark"):
        runners = {}
        for variant, path in in_ort.items():
            runners[variant], created = onnx_runner(path, threads)
            session_seconds.setdefault(variant, round(created, 4))
        runners[AA_CONTROL], _ = onnx_runner(paths[REFERENCE], threads)
        for variant, path in own_runtime.items():
            if variant not in not_run:
                try:
                    started = time.perf_counter()
                    runners[variant], kernels[variant] = openvino_runner(path, threads, made_for[variant].precision)
                    session_seconds.setdefault(variant, round(time.perf_counter() - started, 4))
                except NotRunnableHere as error:
                    not_run[variant] = str(error)
                    tqdm.write(f"warning: {variant} skipped: {error}")
        if "openvino" in options.runtimes:
            runners.update(openvino_rows(in_ort, threads, openvino_info))
        if options.pytorch:
            runners[PYTORCH], created = pytorch_runner(checkpoint, threads)
            session_seconds.setdefault(PYTORCH, round(created, 4))
        if threads == 1:
            runners.update({name: gemm_runner(integer) for name, (_, integer) in GEMMS.items()})
        features, lengths = benchmark_inputs(store, batch, seconds)
        times = time_interleaved(runners, features, lengths, options.rounds, options.warmup)
        key = configuration_key(batch, seconds, threads)
        if threads == 1:
            one_thread[key] = (batch, features.shape[1])
            peaks[key] = {rate: round(gmacs(min(times.pop(name))), 1) for name, (rate, _) in GEMMS.items()}
        reference = times[REFERENCE]
        for name, values in times.items():
            summary = latency_summary(values, batch, seconds)
            summary["speedup_vs_fp32"], summary["speedup_ci95"] = paired_speedup(reference, values)
            if name == AA_CONTROL:
                controls[key] = {"aa_ratio": summary["speedup_vs_fp32"], "aa_ci95": summary["speedup_ci95"]}
            else:
                latency.setdefault(name, {})[key] = summary

    memory_batch, memory_seconds = max(options.batches), options.middle_seconds
    fp32_size = size_mb(paths[REFERENCE])
    own_file = {**paths, PYTORCH: paths[REFERENCE], AA_CONTROL: paths[REFERENCE]}
    own_file.update({OPENVINO + variant: path for variant, path in paths.items()})
    macs = functools.cache(layer_macs)  # each file's weights read once per input length, not once per row
    shares_of_peak(latency, one_thread, all_float, peaks, lambda name, frames: macs(own_file[name], frames))
    if peaks:  # the best each GEMM did in any configuration; each share uses its own configuration's
        hardware["one_core_gemm"] = {rate: max(peak[rate] for peak in peaks.values()) for rate, _ in GEMMS.values()}
        hardware["one_core_gemm_by_configuration"] = peaks
    metrics: dict[str, Any] = {
        "hardware": hardware,
        "controls": {"aa": controls, **thread_checks(latency, options)},
        "variants": {},
    }
    for variant, path in tqdm(paths.items(), desc="peak memory"):
        if variant in not_run:
            metrics["variants"][variant] = {"size_mb": round(size_mb(path), 3), "skipped": not_run[variant]}
            continue
        memory = peak_memory_mb(path, 0, memory_batch, memory_seconds, store)
        metrics["variants"][variant] = {
            "runs_in": f"{made_for[variant].runtime} {made_for[variant].precision}",
            **({"openvino_kernels": kernels[variant]} if variant in kernels else {}),
            "size_mb": round(size_mb(path), 3),
            "size_ratio_vs_fp32": round(fp32_size / size_mb(path), 3),
            "session_seconds": session_seconds[variant],
            **memory,
            "latency": latency[variant],
        }
    if options.pytorch:
        metrics["variants"][PYTORCH] = {"session_seconds": session_seconds[PYTORCH], "latency": latency[PYTORCH]}
    if "openvino" in options.runtimes:
        metrics["runtimes"] = {"openvino": openvino_metrics(latency, openvino_info)}
    metrics["memory_measured_at"] = f"batch {memory_batch}, {memory_seconds:g} s, all threads"
    middle = options.middle_seconds
    # A variant this CPU could not run keeps an empty column: DVC draws nothing of a plot that lacks a field it lists.
    rows = [
        {
            "batch": batch,
            **{
                name: per_key[configuration_key(batch, middle, 1)]["latency_ms_p50"]
                for name, per_key in latency.items()
            },
            **{variant: "" for variant in not_run},
        }
        for batch in sorted(options.batches)
        if 1 in options.threads
    ]
    return metrics, rows


def shares_of_peak(
    latency: dict[str, dict[str, dict]],
    one_thread: dict[str, tuple[int, int]],
    float_layers: dict[str, list[str]],
    peaks: dict[str, dict[str, float]],
    macs_of: Callable[[str, int], dict[str, int]],
) -> None:
    """Adds ``share_of_peak`` to the rows of the one-thread configurations (``one_thread``: key ->
    batch and input frames) whose layers' precisions are known, against the GEMM rates timed in
    the same configuration's rounds; not the bf16 variant's, as no bf16 peak is measured.
    ``macs_of(row, frames)``: the row's own convs' MACs (a pruned variant does fewer)."""
    for key, (batch, frames) in one_thread.items():
        for name, per_key in latency.items():
            if name in float_layers and key in per_key:
                per_utterance = per_key[key]["latency_ms_p50"] / 1000 / batch
                share = share_of_peak(macs_of(name, frames), float_layers[name], per_utterance, peaks[key])
                per_key[key]["share_of_peak"] = round(share, 3)


def thread_checks(latency: dict[str, dict[str, dict]], options: BenchmarkOptions) -> dict[str, Any]:
    """Whether all cores ever made a variant slower than one core at the largest batch: the
    sign of threads fighting each other rather than sharing the work."""
    if not {1, 0} <= set(options.threads):
        return {}
    batch, middle = max(options.batches), options.middle_seconds
    one, every = configuration_key(batch, middle, 1), configuration_key(batch, middle, 0)
    gains = {
        name: round(per_key[one]["latency_ms_p50"] / per_key[every]["latency_ms_p50"], 3)
        for name, per_key in latency.items()
        if one in per_key and every in per_key
    }
    return {f"all_cores_gain_{one.removesuffix('_1thread')}": gains}


def headline_lines(metrics: dict[str, Any], options: BenchmarkOptions) -> list[str]:
    """One line per variant at batch 1, one thread and the longest audio (the summary's headline
    configuration), or why it was not timed."""
    headline = configuration_key(1, max(options.seconds), 1)
    lines = []
    for name, entry in metrics["variants"].items():
        row = entry.get("latency", {}).get(headline)
        if "skipped" in entry:
            lines.append(f"{name:>20}: skipped, {entry['skipped']}")
        elif row:
            share = f", {row['share_of_peak']:.0%} of the one-core peak" if "share_of_peak" in row else ""
            speed = f"{row['latency_ms_p50']:9.2f} ms p50 ({headline}), {row['speedup_vs_fp32']:.2f}x fp32"
            lines.append(f"{name:>20}: {speed}{share}")
    return lines


def control_lines(controls: dict[str, Any]) -> list[str]:
    """The A/A noise floor and the all-cores gains, for the stage's output."""
    ratios = [entry["aa_ratio"] for entry in controls.get("aa", {}).values()]
    lines = [f"A/A (fp32 against itself): ratios {min(ratios):.3f} to {max(ratios):.3f}"] if ratios else []
    for name, gains in controls.items():
        if name.startswith("all_cores_gain"):
            slower = [variant for variant, gain in gains.items() if gain < 1]
            lines.append(f"{name}: " + (f"slower with all cores: {', '.join(slower)}" if slower else "none slower"))
    return lines
