"""Which layers can be int8: per-layer sensitivity, and the automatic choice of layers kept in float.

Every candidate is the static int8 recipe with some layers left in float. Calibration
runs once: ORT's calibration cache holds the ranges of every conv tensor, so each
candidate only re-quantizes (about a second) and is scored on a dev subset, decoded in
``eval.workers`` processes as the evaluation does. Per layer we measure quantizing only
that layer and quantizing all layers but that one, as CER change against fp32 and mean
per-frame KL divergence of the output distributions.

The choice keeps as few layers in float as meet ``max_cer_increase``; among equally
small sets it keeps the one that costs least latency (multiply-accumulates per frame,
which follow the layer's stride) and then size (parameters).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from tqdm import tqdm

from speechquant.calibration import seeded_subset
from speechquant.compare import CompareOptions, Scored, describe_difference, paired_bootstrap
from speechquant.ctc import LAYER_NAMES, LAYERS
from speechquant.decode import Decoder
from speechquant.errors import UserError
from speechquant.evaluate import decode_and_score, model_outputs
from speechquant.metrics import char_edits
from speechquant.params import Checked, limits
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import session
from speechquant.store import Store
from speechquant.variants import float_layers


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


def run_sensitivity(
    model: Path,
    train: Store,
    dev: Store,
    options: QuantOptions,
    auto: AutoOptions,
    decoder: Decoder,
    bootstrap: CompareOptions,
    workers: int,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Each layer's effect quantized alone and left out, and the search for ``auto_int8``'s float layers.

    Returns the choice (``models/auto_int8.json``), the per-layer rows and the metrics.
    Every candidate is the static int8 recipe with one shared calibration, scored on the
    dev subset against fp32 with paired bootstrap intervals.
    """
    subset = seeded_subset(len(dev), auto.utterances, auto.seed)
    references = [dev.utterances[i].text for i in subset]
    if any(r is None for r in references):
        raise UserError("the dev split has utterances without transcripts; sensitivity needs references")

    def outputs(path: Path) -> list[np.ndarray]:
        return model_outputs(session(path, threads=1), dev, batch_size=32, workers=workers, only=subset)[0]

    def scored(got: list[np.ndarray]) -> Scored:
        hypotheses = [hypothesis for hypothesis, _ in decode_and_score(decoder, [None] * len(got), got, workers)]
        edits = np.array([char_edits(r, h) for r, h in zip(references, hypotheses, strict=True)])
        ids = [dev.utterances[i].id for i in subset]
        return Scored(ids, references, hypotheses, edits, np.array([len(r) for r in references]))

    reference_outputs = outputs(model)
    reference_scored = scored(reference_outputs)
    reference_cer = reference_scored.cer()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "calibration.json"

        def measure(kept_float: tuple[str, ...]) -> Score:
            """The static int8 model with exactly ``kept_float`` in float, scored on the subset."""
            candidate = Path(scratch) / "candidate.onnx"
            exclude = tuple(sorted(kept_float, key=LAYER_NAMES.index))
            quantize(
                "static_int8",
                model,
                candidate,
                QuantOptions(exclude=exclude, calibration=options.calibration),
                train,
                calibration_cache=cache,
            )
            got = outputs(candidate)
            result = scored(got)
            return Score(result.cer(), mean_kl(reference_outputs, got), result)

        # The per-layer table measures each layer's own effect, whatever quant.exclude says.
        every_layer = measure(())
        only, all_but = {}, {}
        for layer in tqdm(LAYER_NAMES, desc="sensitivity"):
            only[layer] = measure(tuple(other for other in LAYER_NAMES if other != layer))
            all_but[layer] = measure((layer,))
        costs = layer_costs(model)

        # The choice is made on top of quant.exclude: those layers stay float in every candidate.
        def with_exclude(layers: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(float_layers("auto_int8", options.exclude, layers))

        known = {(): every_layer, **{(layer,): all_but[layer] for layer in LAYER_NAMES}} if not options.exclude else {}
        searched = dict(known)

        def candidate(layers: tuple[str, ...]) -> Score:
            searched[layers] = measure(with_exclude(layers))
            return searched[layers]

        chosen, trace = search(candidate, reference_cer, costs, auto, known)
    seconds = time.perf_counter() - started

    def relative(cer: float) -> float:
        return round(cer / max(reference_cer, 1e-12) - 1, 5)

    compared: dict[int, dict] = {}  # by score: a set in the trace is also a row of the per-layer table

    def versus_fp32(score: Score) -> dict:
        assert score.scored is not None
        if id(score) not in compared:
            compared[id(score)] = paired_bootstrap(
                score.scored, reference_scored, bootstrap.bootstrap_samples, bootstrap.seed
            )
        return compared[id(score)]

    for entry in trace:
        entry["vs_fp32"] = versus_fp32(searched[tuple(entry["float_layers"])])
    rows = [
        {
            "layer": layer,
            "only_this_layer_cer_change": relative(only[layer].cer),
            "only_this_layer_measurable": versus_fp32(only[layer])["measurable"],
            "only_this_layer_kl": round(only[layer].kl, 6),
            "all_but_this_layer_cer_change": relative(all_but[layer].cer),
            "all_but_this_layer_measurable": versus_fp32(all_but[layer])["measurable"],
            "all_but_this_layer_kl": round(all_but[layer].kl, 6),
            "parameters": int(costs[layer]["parameters"]),
            "macs_per_frame": int(costs[layer]["macs_per_frame"]),
        }
        for layer in LAYER_NAMES
    ]
    met = chosen is not None
    one_character = 1 / max(int(reference_scored.edits.sum()), 1)
    kept = list(chosen) if met else list(min(trace, key=lambda t: t["cer"])["float_layers"])
    metrics = {
        "dev_subset_utterances": len(references),
        "fp32_cer": round(reference_cer, 6),
        "max_cer_increase": auto.max_cer_increase,
        "all_layers_int8_cer_change": relative(every_layer.cer),
        "all_layers_int8_vs_fp32": versus_fp32(every_layer),
        # The subset's resolution: a budget below one character's change cannot be told from noise.
        "one_character_relative_change": round(one_character, 6),
        "budget_below_resolution": auto.max_cer_increase < one_character,
        "auto_float_layers": kept,
        "auto_meets_budget": met,
        "candidates_scored": len({tuple(t["float_layers"]) for t in trace} | set(known)) + len(LAYER_NAMES),
        "seconds": round(seconds, 1),
        "layers": {row["layer"]: {k: v for k, v in row.items() if k != "layer"} for row in rows},
        "search": trace,
    }
    return {"float_layers": kept, "meets_budget": met}, rows, metrics


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """What the stage prints: the resolution, each layer's effect and the choice."""
    lines = [f"fp32 CER {metrics['fp32_cer']:.4f} on {metrics['dev_subset_utterances']} dev utterances"]
    lines.append(
        f"one character changes the CER by {metrics['one_character_relative_change']:.3%} relative; "
        f"every layer int8: {describe_difference(metrics['all_layers_int8_vs_fp32'])}"
    )
    for layer, row in metrics["layers"].items():
        only_change, but_change = row["only_this_layer_cer_change"], row["all_but_this_layer_cer_change"]
        lines.append(f"{layer:>6}: only it int8 {only_change:+.2%}, all but it int8 {but_change:+.2%}")
    verdict = "meets" if metrics["auto_meets_budget"] else "MISSES"
    kept = metrics["auto_float_layers"] or "no layer"
    lines.append(f"auto_int8 keeps {kept} in float ({verdict} the budget) in {metrics['seconds']:.0f} s")
    return lines
