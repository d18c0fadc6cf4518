"""Whether ONNX Runtime's (or OpenVINO's) int8 kernels compute what an int8 model says on this
CPU, and what any difference costs in CER.

    python tools/int8_exactness.py [--variant static_int8] [--utterances 150] [--runtime openvino]
                                   [--output reports/int8_exactness_<machine>.json]
    python tools/int8_exactness.py --readme-only --output reports/int8_exactness_<machine>.json

Without VNNI (AVX2 only, or AVX-512 without VNNI) ONNX Runtime's MLAS multiplies uint8
activations by int8 weights with VPMADDUBSW, which adds each pair of products into a signed
16-bit value with saturation: two products of 255 x 127 (64,770) come out as 32,767. VNNI
adds four products straight into 32 bits, which this model never overflows, and uint8 x
uint8 runs a widening kernel that is exact everywhere. So the same int8 file can compute
something else on an older CPU than on the one it was measured on. The tool measures both
levels on the machine it runs on:

1. the kernels: ONNX Runtime's ``MatMulInteger`` of random full-range operands, uint8 x int8
   and uint8 x uint8, against the exact integer products;
2. the model: ``--variant`` as ONNX Runtime runs it (fused ``QLinearConv``) against the same
   file with graph optimizations off, where every conv reads ``DequantizeLinear``'s float
   values: the model's own arithmetic with no 16-bit intermediate. Their fidelity on a seeded
   dev subset (and each one's against its float model, for scale), and beam-20 CER on every split in
   ``eval.splits``, compared by the compare stage's paired bootstrap;
3. the remedy: the same variant made with 7-bit weights (``quant.weight_bits: 7``, the default:
   ONNX Runtime's ``reduce_range``, weights in [-64, 64], so that no pair of products exceeds
   2 x 255 x 64 = 32,640), scored alike. The tool makes both widths by the quantize stage's recipe
   and params, and checks that the one of ``quant.weight_bits`` is the pipeline's file byte for
   byte; the three files (float, 8-bit, 7-bit) are also timed at
   batch 1, 10 s of dev audio, one thread, in interleaved rounds, as ``tools/runtime_check.py``
   times.

With ``--runtime openvino`` "as run" is OpenVINO's CPU plugin (oneDNN), and its kernel check is a
QDQ convolution of the same operands. oneDNN reads ``ONEDNN_MAX_CPU_ISA`` when it starts, so a
CPU with VNNI can show what a CPU without it computes: ``ONEDNN_MAX_CPU_ISA=AVX2`` (or
``AVX512_CORE``, AVX-512 without VNNI) before the command; the report names the cap and the
oneDNN primitive of every convolution (``jit_avx2_I8``), so that the cap is seen to hold.
ONNX Runtime has no such switch: its kernels follow the CPU.

It writes its table into README.md between the markers named after the report's file.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from compress_sweep import readme_with
from equalize_effect import fidelity
from onnx import TensorProto, helper, numpy_helper

from speechquant.calibration import seeded_subset
from speechquant.compare import CompareOptions, Scored, paired_bootstrap
from speechquant.decode import Decoder, DecoderOptions
from speechquant.evaluate import EvalOptions, decode_and_score, model_outputs
from speechquant.fileio import atomic_path
from speechquant.hardware import hardware_stamp, machine_words
from speechquant.lock import file_md5
from speechquant.metrics import char_edits
from speechquant.openvino_session import OpenVinoSession
from speechquant.params import build, load_params, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import RUNTIMES, open_model
from speechquant.saturation import RUNTIME_WORDS, SEVEN_BIT_LIMIT, has_vnni
from speechquant.store import Store
from speechquant.timing import paired_speedup, time_interleaved
from speechquant.variants import recipe_for
from speechquant.verify import INT8_KERNELS


def markers(report_name: str) -> tuple[str, str]:
    """The README's markers around one report's table, named by the report's file stem."""
    return (
        f"<!-- int8 exactness: written by tools/int8_exactness.py from reports/{report_name}.json -->",
        f"<!-- end of int8 exactness: {report_name} -->",
    )


# The variant as the runtime fuses it; unfused, in float arithmetic; made with 7-bit weights, fused.
WAYS = ("kernels", "reference", "seven_bit")
ISA_CAP = "ONEDNN_MAX_CPU_ISA"  # oneDNN's (so OpenVINO's) switch to a lower instruction set
TIMED_FRAMES, TIMED_ROUNDS = 1000, 20  # 10 s at a 10 ms hop, as the benchmark stage times
KERNEL_SHAPE = (256, 256, 64)  # rows x depth x columns of the kernel check: a conv layer's order of size


def kernel_errors(rows: int = KERNEL_SHAPE[0], depth: int = KERNEL_SHAPE[1], columns: int = KERNEL_SHAPE[2]) -> dict:
    """Per weight type, the share of ``MatMulInteger`` outputs that differ from the exact integer
    product, and the largest difference, for uint8 activations over their whole range."""
    rng = np.random.default_rng(0)
    activations = rng.integers(0, 256, size=(rows, depth), dtype=np.uint8)
    measured = {}
    for name, dtype in (("uint8_x_int8", np.int8), ("uint8_x_uint8", np.uint8)):
        info = np.iinfo(dtype)
        weights = rng.integers(info.min, info.max + 1, size=(depth, columns), dtype=dtype)
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["c"])],
            "exactness",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [rows, depth])],
            [helper.make_tensor_value_info("c", TensorProto.INT32, [rows, columns])],
            [numpy_helper.from_array(weights, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        runner = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        product = runner.run(None, {"a": activations})[0].astype(np.int64)
        exact = activations.astype(np.int64) @ weights.astype(np.int64)
        measured[name] = {
            "wrong_share": round(float((product != exact).mean()), 5),
            "max_abs_error": int(np.abs(product - exact).max()),
        }
    return measured


def qdq_conv(weights: np.ndarray, frames: int) -> onnx.ModelProto:
    """A uint8 x int8 QDQ convolution of ``weights`` (outputs, channels, taps) with scale 1 and zero
    point 0: fed integers 0..255, every value is exact in float32."""
    outputs, channels, taps = weights.shape
    constants = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array(1.0, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "zero_u8"),
        numpy_helper.from_array(np.array(0, np.int8), "zero_s8"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero_u8"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "scale", "zero_u8"], ["x_d"]),
        helper.make_node("DequantizeLinear", ["w", "scale", "zero_s8"], ["w_d"]),
        helper.make_node("Conv", ["x_d", "w_d"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "exactness",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, frames])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, outputs, frames - taps + 1])],
        constants,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def openvino_kernel_errors(channels: int = KERNEL_SHAPE[1], outputs: int = KERNEL_SHAPE[2]) -> dict:
    """Per weight width (8 bits, and 7 as ``reduce_range`` makes them), the share of an OpenVINO
    uint8 x int8 convolution's outputs that differ from the exact integer product, the largest
    difference, and the oneDNN primitive that ran it.

    The convolution runs as every int8 file does, through ``OpenVinoSession`` at f32: OpenVINO's
    own default on a CPU with bf16 in hardware would round its float output to bf16."""
    rng = np.random.default_rng(0)
    taps, frames = 3, KERNEL_SHAPE[0]
    activations = rng.integers(0, 256, size=(1, channels, frames)).astype(np.float32)
    signal = activations[0].astype(np.int64)
    measured: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="openvino_kernels_") as scratch:
        for name, limit in (("uint8_x_int8", 128), ("uint8_x_int7", SEVEN_BIT_LIMIT)):
            weights = rng.integers(-limit, min(limit, 127) + 1, size=(outputs, channels, taps), dtype=np.int8)
            path = Path(scratch) / f"{name}.onnx"
            onnx.save(qdq_conv(weights, frames), path)
            ran = OpenVinoSession(path, 1, "f32")
            product = ran.run(None, {"x": activations})[0][0].astype(np.int64)
            kernel = weights.astype(np.int64)
            exact = sum(kernel[:, :, tap] @ signal[:, tap : tap + frames - taps + 1] for tap in range(taps))
            measured[name] = {
                "wrong_share": round(float((product != exact).mean()), 5),
                "max_abs_error": int(np.abs(product - exact).max()),
            }
    measured["primitive"] = ", ".join(ran.kernels["primitives"])  # the same conv shape both times
    return measured


def reference_session(path: Path) -> ort.InferenceSession:
    """``path`` with ONNX Runtime's graph optimizations off: its QDQ nodes run as written, each conv
    in float on dequantized int8 values. Refuses a graph that still holds an int8 kernel, which
    would make the reference the thing it is compared with."""
    held = sorted({node.op_type for node in onnx.load(str(path)).graph.node} & set(INT8_KERNELS))
    if held:
        raise SystemExit(f"error: {path} holds {held} as written; it has no float reference to compare with")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def scored(runner: ort.InferenceSession, store: Store, decoder: Decoder, options: EvalOptions) -> Scored:
    """One session's per-utterance edits on one split, decoded and scored as the evaluate stage does."""
    workers = options.worker_count()
    outputs, _ = model_outputs(runner, store, options.batch_size, workers)
    references = [utterance.text for utterance in store.utterances]
    hypotheses = [hypothesis for hypothesis, _ in decode_and_score(decoder, references, outputs, workers)]
    kept = [(u, h) for u, h in zip(store.utterances, hypotheses, strict=True) if u.text is not None]
    return Scored(
        ids=[u.id for u, _ in kept],
        references=[u.text or "" for u, _ in kept],
        hypotheses=[h for _, h in kept],
        edits=np.array([char_edits(u.text or "", h) for u, h in kept]),
        lengths=np.array([len(u.text or "") for u, _ in kept]),
    )


def made_with_weight_bits(variant: str, source: Path, output: Path, train: Store, bits: int) -> None:
    """``variant`` made by the quantize stage's recipe and params, but for ``quant.weight_bits``."""
    options = build(QuantOptions, section(load_params(), "quant"), "quant")
    quantize(variant, source, output, replace(options, weight_bits=bits), train)


def latencies(runners: dict[str, ort.InferenceSession], dev: Store) -> dict[str, Any]:
    """Each session's median ms on the first 10 s of dev audio and its speed-up over the first
    session's within the same rounds (95 % interval)."""
    pieces, frames = [], 0
    for index in range(len(dev)):
        if frames >= TIMED_FRAMES:
            break
        pieces.append(np.asarray(dev[index], dtype=np.float32))
        frames += len(pieces[-1])
    rows = np.concatenate(pieces)[:TIMED_FRAMES]
    features, lengths = rows[None], np.array([len(rows)])
    calls = {
        name: lambda f, n, r=runner: r.run(None, {"features": f, "lengths": n}) for name, runner in runners.items()
    }
    times = time_interleaved(calls, features, lengths, TIMED_ROUNDS, warmup=1)
    first = next(iter(times.values()))
    timed = {}
    for name, values in times.items():
        speedup, interval = paired_speedup(first, values)
        timed[name] = {"ms": round(float(np.median(values)) * 1000, 2), "x_float": speedup, "ci95": interval}
    return timed


def float_model(models: Path, variant: str) -> Path:
    """The float file ``variant`` is quantized from: the export (as ``fp32``, a copy) or another variant."""
    source = recipe_for(variant).source
    return models / ("fp32.onnx" if source == "export" else f"{source}.onnx")


def measure(models: Path, features: Path, variant: str, utterances: int, runtime: str) -> dict[str, Any]:
    """The report's model-level measurements of ``variant`` made with 8-bit and with 7-bit weights
    (after checking that the one of ``quant.weight_bits`` is the pipeline's file) and of its float
    model, run (and timed) in ``runtime``."""
    params = load_params()
    path, float_path = models / f"{variant}.onnx", float_model(models, variant)
    dev = Store(features / "dev")
    subset = seeded_subset(len(dev), min(utterances, len(dev)), seed=0)
    workers = os.cpu_count() or 1

    def outputs(runner: ort.InferenceSession) -> list[np.ndarray]:
        return model_outputs(runner, dev, batch_size=32, workers=workers, only=subset)[0]

    with tempfile.TemporaryDirectory() as scratch:
        eight_bit, seven_bit = Path(scratch) / "eight_bit.onnx", Path(scratch) / "seven_bit.onnx"
        train = Store(features / "train")
        made_with_weight_bits(variant, float_path, eight_bit, train, 8)
        made_with_weight_bits(variant, float_path, seven_bit, train, 7)
        stage_bits = build(QuantOptions, section(params, "quant"), "quant").weight_bits
        if file_md5(eight_bit if stage_bits == 8 else seven_bit) != file_md5(path):
            raise SystemExit(f"error: {variant} made here differs from {path}: run `dvc repro` first")
        runners = {
            "kernels": open_model(eight_bit, 1, runtime).session,
            "reference": reference_session(eight_bit),
            "seven_bit": open_model(seven_bit, 1, runtime).session,
        }
        float_runner = open_model(float_path, 1, runtime).session
        float_outputs = outputs(float_runner)
        way_outputs = {way: outputs(runner) for way, runner in runners.items()}
        seven_bit_reference = outputs(reference_session(seven_bit))
        timed = {"float": float_runner, "kernels": runners["kernels"], "seven_bit": runners["seven_bit"]}
        latency = latencies(timed, dev)
    report_fidelity = {
        "kernels_vs_reference": fidelity(way_outputs["reference"], way_outputs["kernels"]),
        "seven_bit_vs_its_reference": fidelity(seven_bit_reference, way_outputs["seven_bit"]),
        **{f"{way}_vs_float": fidelity(float_outputs, way_outputs[way]) for way in WAYS},
    }
    decoding = build(DecoderOptions, section(params, "decode"), "decode")
    if decoding.lm != "none":
        raise SystemExit("error: decode.lm is set; this tool scores as the evaluate stage does without an LM")
    decoder = Decoder(decoding, None)
    evaluation = build(EvalOptions, section(params, "eval"), "eval")
    comparing = build(CompareOptions, section(params, "compare"), "compare")

    def versus(first: Scored, second: Scored) -> dict[str, Any]:
        return paired_bootstrap(first, second, comparing.bootstrap_samples, comparing.seed)

    cer: dict[str, Any] = {}
    for split in evaluation.splits:
        store = Store(features / split)
        scores = {way: scored(runner, store, decoder, evaluation) for way, runner in runners.items()}
        cer[split] = {
            **{way: round(scores[way].cer(), 6) for way in WAYS},
            "kernels_vs_reference": versus(scores["kernels"], scores["reference"]),
            "seven_bit_vs_kernels": versus(scores["seven_bit"], scores["kernels"]),
        }
        print(f"{split}: CER " + ", ".join(f"{way} {cer[split][way]:.4f}" for way in WAYS))
    primitives = {
        way: ", ".join(runner.kernels["primitives"])
        for way, runner in runners.items()
        if isinstance(runner, OpenVinoSession)
    }
    return {
        "variant": variant,
        "runtime": runtime,
        "conv_primitives": primitives,
        "float_model": float_path.name,
        "model_md5": file_md5(path),
        "utterances": len(subset),
        "fidelity": report_fidelity,
        "cer": cer,
        "latency_batch1_10s_1thread": latency,
    }


def relative(entry: dict[str, Any]) -> str:
    """A paired-bootstrap entry as "+0.19 % [-0.33, +0.65]"."""
    return (
        f"{entry['relative_difference'] * 100:+.2f} % [{entry['relative_ci95_low'] * 100:+.2f}, "
        f"{entry['relative_ci95_high'] * 100:+.2f}]"
    )


def kernel_words(report: dict[str, Any]) -> str:
    """The caption's sentence on the kernel check, in the words of the runtime that ran it."""
    kernels = report["kernels"]
    rows, depth, columns = report["kernel_shape"]
    signed = (
        f"uint8 x int8 {kernels['uint8_x_int8']['wrong_share'] * 100:.1f} % of outputs wrong "
        f"(by up to {kernels['uint8_x_int8']['max_abs_error']:,})"
    )
    if report["runtime"] == "openvino":
        return (
            f"OpenVINO's int8 convolution (`{kernels['primitive']}`; {depth} channels, 3 taps, {rows} frames into "
            f"{columns}, random operands over their whole range) against the exact integer product: {signed}, "
            f"with weights in [-64, 64] {kernels['uint8_x_int7']['wrong_share'] * 100:.1f} %."
        )
    return (
        f"ONNX Runtime's `MatMulInteger` ({rows}x{depth} by {depth}x{columns}, random operands over their whole "
        f"range) against the exact integer product: {signed}, uint8 x uint8 "
        f"{kernels['uint8_x_uint8']['wrong_share'] * 100:.1f} %."
    )


def exactness_block(report: dict[str, Any], report_name: str) -> str:
    """The README's table of one report (the file ``reports/<report_name>.json``), markers included."""
    ways = report["fidelity"]
    parent = report["float_model"].removesuffix(".onnx")
    runtime = RUNTIME_WORDS[report["runtime"]]
    begin, end = markers(report_name)
    cap = f", oneDNN capped at {report['isa_cap']}" if report["isa_cap"] else ""
    primitives = report["conv_primitives"]
    ran = (
        f" Its 8-bit convolutions ran as `{primitives['kernels']}`, the 7-bit ones as `{primitives['seven_bit']}`."
        if primitives
        else ""
    )
    fused = "QLinearConv" if report["runtime"] == "onnxruntime" else "int8 convolutions"
    own = {
        "kernels": ways["kernels_vs_reference"]["mean_kl"],
        "reference": 0.0,
        "seven_bit": ways["seven_bit_vs_its_reference"]["mean_kl"],
    }
    lines = [
        begin,
        "",
        f"{machine_words(report['machine'])}, {'with' if report['vnni'] else 'without'} VNNI{cap}; "
        f"`{report['command']}` ({report['seconds'] / 60:.0f} min) on {report['model']}. {kernel_words(report)}"
        f"{ran} `{report['variant']}` three ways; fidelity on "
        f"{report['utterances']} dev utterances, beam-20 CER on every split with the 95 % paired-bootstrap "
        "interval of the relative difference:",
        "",
        f"| | 8-bit weights, as {runtime} runs them ({fused}) | the same file unfused, in float arithmetic "
        f"| 7-bit weights (`reduce_range`), as {runtime} runs them |",
        "|---|---|---|---|",
        f"| mean per-frame KL({parent} ‖ int8) | "
        + " | ".join(f"{ways[f'{way}_vs_float']['mean_kl']:.6f}" for way in WAYS)
        + " |",
        f"| greedy agreement with {parent} | "
        + " | ".join(f"{ways[f'{way}_vs_float']['greedy_agreement'] * 100:.2f} %" for way in WAYS)
        + " |",
        "| KL(own file unfused ‖ as run) | " + " | ".join(f"{own[way]:.6f}" for way in WAYS) + " |",
    ]
    timed = report["latency_batch1_10s_1thread"]
    lines.append(
        f"| latency, batch 1, 10 s, 1 thread (speed-up over {parent}, {timed['float']['ms']:.1f} ms) | "
        f"{timed['kernels']['ms']:.1f} ms ({timed['kernels']['x_float']:.2f}x) | not timed (float kernels) | "
        f"{timed['seven_bit']['ms']:.1f} ms ({timed['seven_bit']['x_float']:.2f}x) |"
    )
    for split, entry in report["cer"].items():
        lines.append(
            f"| CER {split} | {entry['kernels']:.4f}, {relative(entry['kernels_vs_reference'])} against unfused | "
            f"{entry['reference']:.4f} | {entry['seven_bit']:.4f}, {relative(entry['seven_bit_vs_kernels'])} "
            "against 8-bit as run |"
        )
    lines += ["", end]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="static_int8", help="a static (QDQ) int8 variant's file in --models")
    parser.add_argument("--utterances", type=int, default=150, help="dev utterances for the fidelity (seeded subset)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime", help="whose int8 kernels to check")
    parser.add_argument("--model", default="the pipeline's trained model", help="what the model is, for the caption")
    parser.add_argument("--models", type=Path, default=Path("models/quantized"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--readme-only", action="store_true", help="rewrite the README's table from --output")
    args = parser.parse_args()
    if not args.readme_only:
        started = time.perf_counter()
        cap = (os.environ.get(ISA_CAP) or None) if args.runtime == "openvino" else None
        command = f"python tools/int8_exactness.py --variant {args.variant} --utterances {args.utterances}"
        if args.runtime != "onnxruntime":
            command += f" --runtime {args.runtime}"
        report = {
            "command": f"{ISA_CAP}={cap} {command}" if cap else command,
            "machine": hardware_stamp(),
            "vnni": has_vnni(),
            "isa_cap": cap,
            "model": args.model,
            "kernel_shape": list(KERNEL_SHAPE),
            "kernels": kernel_errors() if args.runtime == "onnxruntime" else openvino_kernel_errors(),
            **measure(args.models, args.features, args.variant, args.utterances, args.runtime),
        }
        report["seconds"] = round(time.perf_counter() - started, 1)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as temporary:
            temporary.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output} in {report['seconds']:.0f} s")
    report, name = json.loads(args.output.read_text()), args.output.stem
    args.readme.write_text(readme_with(args.readme.read_text(), exactness_block(report, name), *markers(name)))


if __name__ == "__main__":
    main()
