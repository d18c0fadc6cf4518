"""Making a variant of the exported model (``variants.py`` says which; ``verify.py`` checks it).

Float and fp16 variants are converted here, dynamic and static int8 are ONNX Runtime's
quantizers over the conv layers not kept in float; ``qat_int8`` is fine-tuned in
PyTorch (``qat.py``, imported only for it, so that the other variants need no torch).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

from speechquant.calibration import CALIBRATION_METHODS, CalibrationOptions, CalibrationReader
from speechquant.ctc import LAYER_NAMES
from speechquant.equalize import equalize
from speechquant.errors import UserError
from speechquant.fileio import atomic_path
from speechquant.layers import layer_nodes, layer_of
from speechquant.params import Checked, limits
from speechquant.runtime import RunsIn, load_onnx
from speechquant.saturation import SEVEN_BIT_LIMIT
from speechquant.store import Store
from speechquant.variants import VARIANTS, float_layers, recipe_for


@dataclass(frozen=True)
class QuantOptions(Checked):
    """The ``quant`` params."""

    variants: tuple[str, ...] = field(default=tuple(VARIANTS), metadata=limits(choices=VARIANTS))
    exclude: tuple[str, ...] = field(default=(), metadata=limits(choices=LAYER_NAMES))
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    check_utterances: int = field(default=20, metadata=limits(1, 100_000))
    # 7: signed int8 weights in [-64, 64] (ONNX Runtime's reduce_range), computed exactly on any
    # CPU; 8: [-127, 127], which CPUs without VNNI saturate (saturation.py). Unsigned weights
    # (dynamic_int8) are exact everywhere and keep 8 bits either way.
    weight_bits: int = field(default=7, metadata=limits(7, 8))
    qat: dict[str, Any] = field(default_factory=dict)  # checked by its owner, qat.QatOptions
    auto: dict[str, Any] = field(default_factory=dict)  # checked by its owner, sensitivity.AutoOptions

    @property
    def weight_limit(self) -> int:
        """The largest |signed int8 weight| the int8 variants hold: as ONNX Runtime's symmetric range."""
        return SEVEN_BIT_LIMIT if self.weight_bits == 7 else 127

    def reduce_range(self, weight_type: QuantType | None) -> bool:
        """Whether ONNX Runtime's quantizers are to make ``weight_type`` weights 7-bit."""
        return self.weight_bits == 7 and weight_type == QuantType.QInt8


def quantize(
    variant: str,
    source: Path,
    output: Path,
    options: QuantOptions,
    calibration_store: Store | None = None,
    calibration_cache: Path | None = None,
    chosen: tuple[str, ...] = (),
    balance: bool = True,
) -> tuple[list[str], dict[str, Any]]:
    """Write ``variant`` of the model at ``source`` to ``output``.

    Returns the layers kept in float and what the making measured (the calibration
    utterances used). ``auto_int8`` keeps the sensitivity search's ``chosen`` layers in
    float. ``qat_int8`` is trained, not converted: ``qat.make_qat_variant``. ``balance=False`` skips
    the low-rank balancing (``equalize.py``), so that ``tools/equalize_effect.py`` can measure it.
    """
    recipe = recipe_for(variant)
    model = load_onnx(source)  # a clear error if unreadable
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    keep_float = float_layers(variant, options.exclude, chosen)
    nodes = layer_nodes(model.graph)  # a low-rank layer of a compressed model runs as two convs
    to_quantize = [node for layer, names in nodes.items() if layer not in keep_float for node in names]
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
        elif recipe.kind == "compressed":
            raise UserError(f"{variant} is fine-tuned by the compress stage, not converted: run `dvc repro compress`")
        elif not to_quantize:
            raise UserError(f"{variant}: quant.exclude keeps every layer in float; nothing is left to quantize")
        elif recipe.kind == "qat":
            raise UserError(f"{variant} is fine-tuned, not converted: run `dvc repro quantize_qat`")

        elif recipe.kind == "dynamic":
            quantize_dynamic(
                source,
                temporary,
                op_types_to_quantize=["Conv"],
                nodes_to_quantize=to_quantize,
                weight_type=recipe.weight_type,
                reduce_range=options.reduce_range(recipe.weight_type),
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
            # Low-rank layers' middle channels balanced first (float-exact); other models are quantized as they are.
            balanced = temporary.with_name(f"{temporary.stem}.equalized.onnx")  # removed with the scratch folder
            layers = {layer_of(node) for node in to_quantize}
            equalized = equalize(model, balanced, inputs, layers) if balance else {}
            if equalized:
                measured["equalized"] = equalized
            quantize_static(
                balanced if equalized else source,
                temporary,
                CalibrationReader(inputs),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv", "Relu"],
                nodes_to_quantize=[*to_quantize, *relus_after(model.graph, to_quantize)],
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=recipe.weight_type,
                reduce_range=options.reduce_range(recipe.weight_type),
                calibrate_method=CALIBRATION_METHODS[calibration.method],
                # Ranges of every conv tensor, reused by later calls (the sensitivity search).
                calibration_cache_path=calibration_cache,
            )
        runs_in = recipe.runs_in.metadata() if recipe.runs_in != RunsIn() else {}  # ORT at f32 goes unsaid
        if recipe.kind != "float" or runs_in:
            set_metadata(temporary, {**metadata, **runs_in})
    return keep_float, measured


def relus_after(graph: onnx.GraphProto, convs: list[str]) -> list[str]:
    """The ReLU nodes that read one of ``convs``' outputs directly, but for one a float conv reads.

    Given to the static quantizer, each is folded into its conv: the conv's output is quantized
    once, on the ReLU's range [0, max] that the next layer reads, instead of on its own range
    and again after a float ReLU. Measured on the pipeline's models: a quarter to a third less
    divergence from float, and no float pass over the activations for the ReLU. Not before a
    conv kept in float: that conv would then read a DequantizeLinear and, where its own output
    is quantized, ONNX Runtime would quantize its weights itself and run it in int8.
    """
    outputs = {output for node in graph.node if node.name in convs for output in node.output}
    float_inputs = {node.input[0] for node in graph.node if node.op_type == "Conv" and node.name not in convs}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Relu" and node.input[0] in outputs and node.output[0] not in float_inputs
    ]


def set_metadata(target: Path, metadata: dict[str, str]) -> None:
    """Give ``target`` the source model's ``metadata_props``: quantizers and converters drop them."""
    model = onnx.load(str(target))
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(target))
