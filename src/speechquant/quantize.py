"""Quantized variants of the exported model, and the guards that check what they run.

Variants (``quant.variants``):

- ``fp32``: the export as it is; ``fp16``: fp16 weights and compute, float32 inputs/outputs.
- ``dynamic_int8``: the study's int8 — ONNX Runtime dynamic quantization of every conv
  with uint8 weights (ConvInteger); ``dynamic_int8_s8``: the same with ORT's default
  int8 weights; ``dynamic_semi_int8``: the study's semi-int8, conv0 kept in float.
- ``static_int8``: static QDQ, per-channel int8 weights and uint8 activations, ranges
  calibrated on training utterances, one utterance at a time (no padding enters a
  range); ``static_semi_int8``: the same with conv0 in float.
- ``qat_int8``: quantization-aware fine-tuning of the trained checkpoint with fake
  quantization matching the static scheme, exported as QDQ (``qat.py``).

Every int8 variant also keeps the layers in ``quant.exclude`` in float.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from speechquant.errors import UserError
from speechquant.export import load_onnx
from speechquant.fileio import atomic_path, size_mb
from speechquant.model import LAYER_NAMES
from speechquant.params import Checked, limits
from speechquant.qat import QatOptions
from speechquant.runtime import session
from speechquant.sensitivity import AutoOptions
from speechquant.store import Store

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


@dataclass(frozen=True)
class Recipe:
    """How a variant is made: ``kind`` is float, fp16, dynamic or static."""

    kind: str
    weight_type: QuantType | None = None
    keep_float: tuple[str, ...] = ()


VARIANTS = {
    "fp32": Recipe("float"),
    "fp16": Recipe("fp16"),
    "dynamic_int8": Recipe("dynamic", QuantType.QUInt8),
    "dynamic_int8_s8": Recipe("dynamic", QuantType.QInt8),
    "dynamic_semi_int8": Recipe("dynamic", QuantType.QUInt8, ("conv0",)),
    "static_int8": Recipe("static", QuantType.QInt8),
    "static_semi_int8": Recipe("static", QuantType.QInt8, ("conv0",)),
    "qat_int8": Recipe("qat", QuantType.QInt8),
    # static_int8 with the layers the sensitivity stage chose to keep in float (issue: auto choice).
    "auto_int8": Recipe("static", QuantType.QInt8),
}


@dataclass(frozen=True)
class CalibrationOptions(Checked):
    """The ``quant.calibration`` params.

    ORT's histogram calibrators (percentile, entropy) stack every calibration output into
    one array, so they need inputs of one length: each utterance is cut to its middle
    ``frames`` frames, and utterances shorter than that are passed over. MinMax takes
    whole utterances.
    """

    method: str = field(default="percentile", metadata=limits(choices=CALIBRATION_METHODS))
    utterances: int = field(default=200, metadata=limits(1, 100_000))
    frames: int = field(default=300, metadata=limits(1, 100_000))
    seed: int = field(default=0, metadata=limits(0))

    def inputs(self, store: Store) -> list[dict[str, np.ndarray]]:
        """The calibration batches (one utterance each), chosen with ``seed``."""
        if self.method == "minmax":
            return utterance_inputs(store, self.utterances, self.seed)
        order = np.random.default_rng(self.seed).permutation(len(store))
        lengths = np.diff(store.offsets)
        chosen = sorted([int(i) for i in order if lengths[i] >= self.frames][: self.utterances])
        if not chosen:
            raise UserError(f"no calibration utterance has {self.frames} frames; lower quant.calibration.frames")
        inputs = []
        for index in chosen:
            start = (int(lengths[index]) - self.frames) // 2
            features = np.asarray(store[index], dtype=np.float32)[start : start + self.frames]
            inputs.append({"features": features[None], "lengths": np.array([self.frames], dtype=np.int64)})
        return inputs


@dataclass(frozen=True)
class QuantOptions(Checked):
    """The ``quant`` params."""

    variants: tuple[str, ...] = field(default=tuple(VARIANTS), metadata=limits(choices=VARIANTS))
    exclude: tuple[str, ...] = field(default=(), metadata=limits(choices=LAYER_NAMES))
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    check_utterances: int = field(default=20, metadata=limits(1, 100_000))
    qat: QatOptions = field(default_factory=QatOptions)
    auto: AutoOptions = field(default_factory=AutoOptions)


def recipe_for(variant: str) -> Recipe:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def utterance_inputs(store: Store, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` utterances of a store chosen with ``seed``, each as a batch of one."""
    chosen = np.random.default_rng(seed).choice(len(store), size=min(count, len(store)), replace=False)
    return [
        {
            "features": np.asarray(store[int(i)], dtype=np.float32)[None],
            "lengths": np.array([len(store[int(i)])], dtype=np.int64),
        }
        for i in sorted(chosen)
    ]


class _Calibration(CalibrationDataReader):
    def __init__(self, inputs: list[dict[str, np.ndarray]]):
        self._inputs: Iterator[dict[str, np.ndarray]] = iter(inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._inputs, None)


def quantize(
    variant: str,
    source: Path,
    output: Path,
    options: QuantOptions,
    calibration_store: Store | None = None,
    checkpoint: Path | None = None,
    dev_store: Store | None = None,
    calibration_cache: Path | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Write ``variant`` of the model at ``source`` to ``output``.

    Returns the layers kept in float and what the variant's making measured (QAT's dev
    CER before and after fine-tuning). ``qat_int8`` starts from the PyTorch
    ``checkpoint`` and fine-tunes on ``calibration_store``, checking on ``dev_store``.
    """
    recipe = recipe_for(variant)
    metadata = {prop.key: prop.value for prop in load_onnx(source).metadata_props}  # a clear error if unreadable
    keep_float = sorted(set(recipe.keep_float) | set(options.exclude), key=LAYER_NAMES.index)
    if recipe.kind in ("float", "fp16"):
        keep_float = list(LAYER_NAMES)
    to_quantize = [name for name in LAYER_NAMES if name not in keep_float]
    measured: dict[str, Any] = {}
    with atomic_path(output) as temporary:
        if recipe.kind == "float":
            shutil.copyfile(source, temporary)
        elif recipe.kind == "fp16":
            from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

            # LogSoftmax stays float32: ORT's fp16 kernel rounds differently with the batch
            # size, and the log-probs are what the decoder and the CTC loss read.
            fp16 = convert_float_to_float16(
                onnx.load(str(source)), keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, "LogSoftmax"]
            )
            onnx.save(fp16, temporary)
        elif not to_quantize:
            raise UserError(f"{variant}: quant.exclude keeps every layer in float; nothing is left to quantize")
        elif recipe.kind == "qat":
            from speechquant.batching import UtteranceSet
            from speechquant.checkpoint import load_model
            from speechquant.qat import export_qat, fine_tune

            if checkpoint is None or calibration_store is None or dev_store is None:
                raise UserError(f"{variant} needs the trained checkpoint, training and dev utterances")
            model, measured = fine_tune(
                load_model(checkpoint),
                keep_float,
                UtteranceSet(calibration_store),
                UtteranceSet(dev_store),
                options.qat,
                options.calibration.utterances,
            )
            export_qat(model, temporary)
        elif recipe.kind == "dynamic":
            quantize_dynamic(
                source,
                temporary,
                op_types_to_quantize=["Conv"],
                nodes_to_quantize=to_quantize,
                weight_type=recipe.weight_type,
            )
        else:
            if calibration_store is None:
                raise UserError(f"{variant} needs calibration utterances")
            calibration = options.calibration
            inputs = calibration.inputs(calibration_store)
            measured["calibration_utterances"] = len(inputs)  # fewer than asked where fewer are long enough
            if len(inputs) < calibration.utterances:
                print(
                    f"warning: quant.calibration.utterances is {calibration.utterances}, but only {len(inputs)} "
                    f"training utterances have {calibration.frames} frames: calibrating on those",
                    file=sys.stderr,
                )
            quantize_static(
                source,
                temporary,
                _Calibration(inputs),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                nodes_to_quantize=to_quantize,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=recipe.weight_type,
                calibrate_method=CALIBRATION_METHODS[calibration.method],
                # Ranges of every conv tensor, reused by later calls (the sensitivity search).
                calibration_cache_path=calibration_cache,
            )
        if recipe.kind != "float":
            set_metadata(temporary, metadata)
    return keep_float, measured


def set_metadata(target: Path, metadata: dict[str, str]) -> None:
    """Give ``target`` the source model's ``metadata_props``: quantizers and converters drop them."""
    model = onnx.load(str(target))
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(target))


INT8_KERNELS = ("QLinearConv", "ConvInteger")
FLOAT_BEHIND_DEQUANTIZE = "Conv behind DequantizeLinear"


def conv_kernels(path: Path) -> dict[str, str]:
    """The kernel each layer runs after ONNX Runtime's optimizations, by layer name.

    Read from the optimized graph, not the file on disk: a QDQ model whose quantization
    ORT could not fuse runs a float ``Conv`` behind ``DequantizeLinear``, not int8.
    """
    with tempfile.TemporaryDirectory() as scratch:
        optimized = Path(scratch) / "optimized.onnx"
        session(path, optimized)
        graph = onnx.load(str(optimized)).graph
    producers = {output: node for node in graph.node for output in node.output}
    kernels = {}
    for node in graph.node:
        if "Conv" not in node.op_type:
            continue
        layer = node.name.split("_")[0]
        if node.op_type in INT8_KERNELS:
            kernels[layer] = node.op_type
        elif node.input[1] in producers and producers[node.input[1]].op_type == "DequantizeLinear":
            kernels[layer] = FLOAT_BEHIND_DEQUANTIZE
        else:
            kernels[layer] = "Conv"
    return {layer: kernels[layer] for layer in LAYER_NAMES if layer in kernels}


def check_kernels(variant: str, kernels: dict[str, str], keep_float: list[str]) -> None:
    """Fail when an int8 variant does not run exactly its quantized layers with int8 kernels."""
    if sorted(kernels) != sorted(LAYER_NAMES):
        raise UserError(f"{variant}: optimized graph has conv layers {sorted(kernels)}, expected all of conv0..conv10")
    if recipe_for(variant).kind not in ("dynamic", "static", "qat"):
        return
    int8 = [layer for layer, kernel in kernels.items() if kernel in INT8_KERNELS]
    if not int8:
        raise UserError(f"{variant} is named int8 but runs every conv in float: {kernels}")
    floating = [layer for layer in LAYER_NAMES if kernels[layer] not in INT8_KERNELS]
    if floating != keep_float:
        raise UserError(f"{variant}: layers {floating} run in float, but only {keep_float} should: {kernels}")


def max_logprob_difference(reference: Path, variant: Path, inputs: list[dict[str, np.ndarray]]) -> float:
    """Largest absolute log-probability difference between two models over the given inputs."""
    first, second = session(reference), session(variant)
    return max(
        float(np.abs(first.run(["log_probs"], feed)[0] - second.run(["log_probs"], feed)[0]).max()) for feed in inputs
    )


def report(
    variant: str, path: Path, reference: Path, keep_float: list[str], check_inputs: list[dict]
) -> dict[str, Any]:
    """The guards and numbers of ``metrics/quantize/<variant>.json``."""
    kernels = conv_kernels(path)
    check_kernels(variant, kernels, keep_float)
    recipe = recipe_for(variant)
    return {
        "variant": variant,
        "size_mb": round(size_mb(path), 3),
        "size_vs_fp32": round(size_mb(path) / size_mb(reference), 4),
        "smaller_than_fp32": round(size_mb(reference) / size_mb(path), 3),
        "weight_type": recipe.weight_type.name if recipe.weight_type is not None else recipe.kind,
        "conv_kernels": dict(Counter(kernels.values())),
        "float_layers": [layer for layer in LAYER_NAMES if kernels[layer] not in INT8_KERNELS],
        "max_abs_logprob_diff_vs_fp32": round(max_logprob_difference(reference, path, check_inputs), 6),
        "check_utterances": len(check_inputs),
        "session_loads": True,
    }
