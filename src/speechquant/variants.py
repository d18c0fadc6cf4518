"""The variants a model is made into, and the one rule for which layers each keeps in float.

- ``fp32``: the export as it is; ``fp16``: fp16 weights and compute, float32 inputs/outputs.
- ``bf16``: the fp32 file, marked to run in OpenVINO with bfloat16 float layers (CPUs with
  native bf16 only: AVX-512 BF16 or AMX); ONNX Runtime's CPU kernels have no bf16 conv.
- ``dynamic_int8``: the study's int8 — ONNX Runtime dynamic quantization of every conv
  with uint8 weights (ConvInteger); ``dynamic_int8_s8``: the same with ORT's default
  int8 weights; ``dynamic_semi_int8``: the study's semi-int8, conv0 kept in float.
- ``static_int8``: static QDQ, per-channel int8 weights and uint8 activations, ranges
  calibrated on training utterances, one utterance at a time (no padding enters a
  range); ``static_semi_int8``: the same with conv0 in float.
- ``qat_int8``: quantization-aware fine-tuning of the trained checkpoint with fake
  quantization matching the static scheme, exported as QDQ (``qat.py``).
- ``auto_int8``: static_int8 with the layers the sensitivity search chose kept in float.
- ``pruned_fp32``: the layers in ``compress.ranks`` made low-rank (after every hidden layer's
  channels are cut to ``compress.ratio``, where below 1), the smaller model fine-tuned with
  distillation (``compress.py``); ``pruned_int8``: its static int8.
- ``fp32_finetuned``: the trained model fine-tuned as long and alike, uncompressed: the
  control for every fine-tuned variant (qat_int8, pruned_*), so that no gain of extra
  training is credited to quantization or compression.

Every int8 variant also keeps the layers in ``quant.exclude`` in float.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from onnxruntime.quantization import QuantType

from speechquant.ctc import LAYER_NAMES
from speechquant.errors import UserError
from speechquant.runtime import RunsIn


@dataclass(frozen=True)
class Recipe:
    """How a variant is made (``kind``: float, fp16, dynamic, static, qat or compressed), from
    which file (``source``: the export, or another variant), what runs it, and whether it was
    trained further than the export (then compared with ``fp32_finetuned`` too)."""

    kind: str
    weight_type: QuantType | None = None
    keep_float: tuple[str, ...] = ()
    runs_in: RunsIn = field(default_factory=RunsIn)
    source: str = "export"
    fine_tuned: bool = False


VARIANTS = {
    "fp32": Recipe("float"),
    "fp16": Recipe("fp16"),
    "bf16": Recipe("float", runs_in=RunsIn("openvino", "bf16")),
    "dynamic_int8": Recipe("dynamic", QuantType.QUInt8),
    "dynamic_int8_s8": Recipe("dynamic", QuantType.QInt8),
    "dynamic_semi_int8": Recipe("dynamic", QuantType.QUInt8, ("conv0",)),
    "static_int8": Recipe("static", QuantType.QInt8),
    "static_semi_int8": Recipe("static", QuantType.QInt8, ("conv0",)),
    "qat_int8": Recipe("qat", QuantType.QInt8, fine_tuned=True),
    # static_int8 with the layers the sensitivity stage chose to keep in float (issue: auto choice).
    "auto_int8": Recipe("static", QuantType.QInt8),
    "fp32_finetuned": Recipe("compressed"),
    "pruned_fp32": Recipe("compressed", fine_tuned=True),
    "pruned_int8": Recipe("static", QuantType.QInt8, source="pruned_fp32", fine_tuned=True),
}
CONTROL = "fp32_finetuned"  # the reference of every fine-tuned variant beside fp32


def recipe_for(variant: str) -> Recipe:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def float_layers(variant: str, exclude: Iterable[str] = (), chosen: Iterable[str] = ()) -> list[str]:
    """The layers ``variant`` keeps in float, in network order: the recipe's own, ``quant.exclude``,
    and for ``auto_int8`` the sensitivity search's ``chosen`` ones; every layer for the float variants."""
    recipe = recipe_for(variant)
    if recipe.kind in ("float", "fp16", "compressed"):
        return list(LAYER_NAMES)
    extra = set(chosen) if variant == "auto_int8" else set()
    return sorted(set(recipe.keep_float) | set(exclude) | extra, key=LAYER_NAMES.index)
