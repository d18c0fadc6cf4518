"""DVC stage `sensitivity`: each layer's effect on CER and KL when quantized alone or left out,
and the automatic choice of layers to keep in float for the `auto_int8` variant."""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechquant.compare import CompareOptions, Scored, describe_difference, paired_bootstrap
from speechquant.decode import Decoder, DecoderOptions
from speechquant.errors import UserError, exit_on_user_error
from speechquant.evaluate import EvalOptions, model_outputs
from speechquant.fileio import write_csv, write_json
from speechquant.metrics import char_edits
from speechquant.model import LAYER_NAMES
from speechquant.params import build, load_params, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.report import plot_sensitivity
from speechquant.runtime import session
from speechquant.sensitivity import Score, layer_costs, mean_kl, search, subset
from speechquant.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--lm-dir", type=Path, default=Path("models/lm"))
    parser.add_argument("--choice", type=Path, default=Path("models/auto_int8.json"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/sensitivity.json"))
    parser.add_argument("--plot", type=Path, default=Path("plots/sensitivity/layers.csv"))
    parser.add_argument("--figure", type=Path, default=Path("reports/sensitivity.png"))
    args = parser.parse_args()
    params = load_params()
    options = build(QuantOptions, section(params, "quant"), "quant")
    auto = options.auto
    decoding = build(DecoderOptions, section(params, "decode"), "decode")
    decoder = Decoder(decoding, args.lm_dir / f"{decoding.lm}.arpa" if decoding.lm != "none" else None)
    evaluation = build(EvalOptions, section(params, "eval"), "eval")
    bootstrap = build(CompareOptions, section(params, "compare"), "compare")
    train, dev = Store(args.features / "train"), Store(args.features / "dev")
    chosen = subset(dev, auto.utterances, auto.seed)
    references = [dev.utterances[i].text for i in chosen]
    if any(r is None for r in references):
        raise UserError("the dev split has utterances without transcripts; sensitivity needs references")

    def outputs(path: Path) -> list[np.ndarray]:
        every, _ = model_outputs(
            session(path, threads=1), dev, batch_size=32, workers=evaluation.worker_count(), only=chosen
        )
        return [every[i] for i in chosen]

    def scored(got: list[np.ndarray]) -> Scored:
        hypotheses = [decoder(o, len(o)) for o in got]
        edits = np.array([char_edits(r, h) for r, h in zip(references, hypotheses, strict=True)])
        ids = [dev.utterances[i].id for i in chosen]
        return Scored(ids, references, hypotheses, edits, np.array([len(r) for r in references]))

    reference_outputs = outputs(args.model)
    reference_scored = scored(reference_outputs)
    reference_cer = reference_scored.cer()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "calibration.json"

        def measure(float_layers: tuple[str, ...]) -> Score:
            """The static int8 model with exactly ``float_layers`` in float, scored on the subset."""
            candidate = Path(scratch) / "candidate.onnx"
            exclude = tuple(sorted(float_layers, key=LAYER_NAMES.index))
            quantize(
                "static_int8",
                args.model,
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
        costs = layer_costs(args.model)

        # The choice is made on top of quant.exclude: those layers stay float in every candidate.
        def with_exclude(layers: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(sorted(set(layers) | set(options.exclude), key=LAYER_NAMES.index))

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
    float_layers = list(chosen) if met else list(min(trace, key=lambda t: t["cer"])["float_layers"])
    write_json(args.choice, {"float_layers": float_layers, "meets_budget": met})
    write_csv(args.plot, rows)
    plot_sensitivity(rows, args.figure)
    write_json(
        args.metrics,
        {
            "dev_subset_utterances": len(references),
            "fp32_cer": round(reference_cer, 6),
            "max_cer_increase": auto.max_cer_increase,
            "all_layers_int8_cer_change": relative(every_layer.cer),
            "all_layers_int8_vs_fp32": versus_fp32(every_layer),
            # The subset's resolution: a budget below one character's change cannot be told from noise.
            "one_character_relative_change": round(one_character, 6),
            "budget_below_resolution": auto.max_cer_increase < one_character,
            "auto_float_layers": float_layers,
            "auto_meets_budget": met,
            "candidates_scored": len({tuple(t["float_layers"]) for t in trace} | set(known)) + len(LAYER_NAMES),
            "seconds": round(seconds, 1),
            "layers": {row["layer"]: {k: v for k, v in row.items() if k != "layer"} for row in rows},
            "search": trace,
        },
    )
    print(f"fp32 CER {reference_cer:.4f} on {len(references)} dev utterances")
    print(f"one character changes the CER by {one_character:.3%} relative; every layer int8:", end=" ")
    print(describe_difference(versus_fp32(every_layer)))
    for row in rows:
        only_change, but_change = row["only_this_layer_cer_change"], row["all_but_this_layer_cer_change"]
        print(f"{row['layer']:>6}: only it int8 {only_change:+.2%}, all but it int8 {but_change:+.2%}")
    verdict = "meets" if met else "MISSES"
    print(f"auto_int8 keeps {float_layers or 'no layer'} in float ({verdict} the budget) in {seconds:.0f} s")


if __name__ == "__main__":
    exit_on_user_error(main)
