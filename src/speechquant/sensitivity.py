"""Which layers can be int8: per-layer sensitivity, and the automatic choice of layers kept in float.

Every candidate is the static int8 recipe with some layers left in float. Calibration
runs once: ORT's calibration cache holds the ranges of every conv tensor, so each
candidate only re-quantizes (about a second) and is scored on a dev subset. Per layer
we measure quantizing only that layer and quantizing all layers but that one, as CER
change against fp32 and mean per-frame KL divergence of the output distributions.

The choice keeps as few layers in float as meet ``max_cer_increase``; among equally
small sets it keeps the one that costs least latency (multiply-accumulates per frame,
which follow the layer's stride) and then size (parameters).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from speechquant.compare import Scored
from speechquant.ctc import LAYERS
from speechquant.model import LAYER_NAMES
from speechquant.params import Checked, limits
from speechquant.store import Store


@dataclass(frozen=True)
class AutoOptions(Checked):
    """The ``quant.auto`` params."""

    max_cer_increase: float = field(default=0.01, metadata=limits(0, 10))  # relative to fp32 on the dev subset
    utterances: int = field(default=0, metadata=limits(0))  # dev subset the choice is made on; 0: the whole split
    seed: int = field(default=0, metadata=limits(0))
    max_float_layers: int = field(default=3, metadata=limits(0, len(LAYER_NAMES)))  # deepest search
    search_width: int = field(default=5, metadata=limits(1, len(LAYER_NAMES)))  # layers combined in sets of 2+


@dataclass
class Score:
    """A candidate's CER and KL on the subset; ``scored`` holds its per-utterance edits, for intervals."""

    cer: float
    kl: float
    scored: Scored | None = None


def layer_costs(model_path: Path) -> dict[str, dict[str, float]]:
    """Parameters of each conv, and its multiply-accumulates per input frame (its stride shrinks them)."""
    weights = {init.name: numpy_helper.to_array(init) for init in onnx.load(str(model_path)).graph.initializer}
    costs, frames_per_input_frame = {}, 1.0
    for name, geometry in zip(LAYER_NAMES, LAYERS, strict=True):
        frames_per_input_frame /= geometry.stride
        weight = weights[f"{name}.weight"]
        parameters = weight.size + weights[f"{name}.bias"].size
        costs[name] = {"parameters": int(parameters), "macs_per_frame": float(weight.size * frames_per_input_frame)}
    return costs


def subset(store: Store, utterances: int, seed: int) -> list[int]:
    """``utterances`` of the store chosen with ``seed``, in store order; all of them for 0."""
    if utterances == 0 or utterances >= len(store):
        return list(range(len(store)))
    chosen = np.random.default_rng(seed).choice(len(store), size=utterances, replace=False)
    return sorted(int(i) for i in chosen)


def mean_kl(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    """Mean over frames of KL(reference || candidate), from log-probs."""
    total, frames = 0.0, 0
    for ref, cand in zip(reference, candidate, strict=True):
        ref64, cand64 = ref.astype(np.float64), cand.astype(np.float64)
        total += float((np.exp(ref64) * (ref64 - cand64)).sum())
        frames += len(ref)
    return total / max(frames, 1)


def cost_key(layers: tuple[str, ...], costs: dict[str, dict[str, float]]) -> tuple[int, float, int]:
    """Fewest layers, then least float compute, then least float parameters."""
    macs = sum(costs[layer]["macs_per_frame"] for layer in layers)
    return len(layers), macs, sum(int(costs[layer]["parameters"]) for layer in layers)


def search(
    score: Callable[[tuple[str, ...]], Score],
    reference_cer: float,
    costs: dict[str, dict[str, float]],
    options: AutoOptions,
    known: dict[tuple[str, ...], Score] | None = None,
) -> tuple[tuple[str, ...] | None, list[dict[str, Any]]]:
    """The cheapest set of float layers meeting the budget, and every candidate tried.

    ``score(layers)`` scores the model with ``layers`` kept in float (``known`` holds scores
    already measured, such as the sensitivity's single-layer ones). Sets grow one layer
    at a time; at two or more layers only the ``search_width`` layers whose float copy
    helped most alone are combined. Returns None when no set within ``max_float_layers``
    meets the budget.
    """
    budget = reference_cer * (1 + options.max_cer_increase)
    trace: list[dict[str, Any]] = []
    scored: dict[tuple[str, ...], Score] = dict(known or {})

    def tried(layers: tuple[str, ...]) -> Score:
        if layers not in scored:
            scored[layers] = score(layers)
        result = scored[layers]
        trace.append(
            {
                "float_layers": list(layers),
                "cer": round(result.cer, 6),
                "kl": round(result.kl, 6),
                "meets": result.cer <= budget,
            }
        )
        return result

    if tried(()).cer <= budget:
        return (), trace
    singles = {layer: tried((layer,)) for layer in LAYER_NAMES} if options.max_float_layers >= 1 else {}
    passing = [(layer,) for layer, s in singles.items() if s.cer <= budget]
    if passing:
        return min(passing, key=lambda layers: cost_key(layers, costs)), trace
    helpful = sorted(
        sorted(singles, key=lambda layer: singles[layer].cer)[: options.search_width], key=LAYER_NAMES.index
    )
    for size in range(2, options.max_float_layers + 1):
        # Cheapest first, so the first set that meets the budget is the one to keep.
        for layers in sorted(itertools.combinations(helpful, size), key=lambda s: cost_key(s, costs)):
            if tried(layers).cer <= budget:
                return layers, trace
    return None, trace
