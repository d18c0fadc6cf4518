"""How much of the compressed model's gap to its control is the run: the compress stage with other seeds.

    python tools/compress_seeds.py [--seeds 0 1 2] [--steps 400] [--output reports/compress_seeds.json]
    python tools/compress_seeds.py --seeds 1 2 --add   # more seeds into the report at --output
    python tools/compress_seeds.py --readme-only   # the README's table again, from the report
    python tools/compress_seeds.py --set teacher=control --output reports/x.json --readme /tmp/x.md   # another recipe

A seed sets the order of the fine-tuning batches and which training batches the low-rank fit
reads; the trained model stays the pipeline's (``models/model.pt``). For every seed this runs
what the pipeline runs, with its params: the compress stage (``compress.compress``: both
models), ``pruned_int8`` by the quantize stage's recipe, and each scored on dev and test by
the evaluate stage's decoder, the two compressed ones against that seed's control with the
compare stage's paired bootstrap. The seed in ``compress.seed`` is the pipeline's own run: where
``dvc.lock`` records this trained model and ``metrics/compare.json`` as they are, its row is read
from that file rather than measured again (a third of the tool's time); otherwise it is run and
must repeat the file.

Test is read here on purpose: nothing is chosen from this report, it says how far one run's
gap on one split can be trusted. It writes its table into README.md between its markers (a
test checks the two agree). About 24 minutes per measured seed on the 2-core AMD EPYC (1,600 steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from compress_sweep import compress_options, readme_with

from speechquant.batching import UtteranceSet
from speechquant.compare import CompareOptions, Scored, paired_bootstrap
from speechquant.compress import CompressOptions, compress
from speechquant.decode import Decoder, DecoderOptions
from speechquant.evaluate import EvalOptions, evaluate_split
from speechquant.export import export
from speechquant.hardware import hardware_stamp, machine_words
from speechquant.lock import file_md5, locked_outputs
from speechquant.model import load_model
from speechquant.params import build, load_params, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.runtime import load_onnx
from speechquant.store import Store
from speechquant.train import TrainOptions, choose_device, resolve_precision

SEEDS_BEGIN = "<!-- compress seeds: written by tools/compress_seeds.py from reports/compress_seeds.json -->"
SEEDS_END = "<!-- end of compress seeds -->"
CONTROL = "fp32_finetuned"
COMPRESSED = ("pruned_fp32", "pruned_int8")
SPLITS = ("dev", "test")


def scored(store: Store, model: Path, decoder: Decoder, options: EvalOptions) -> Scored:
    """One model's per-utterance edits on one split, as the evaluate stage scores them."""
    _, results = evaluate_split(model, store, decoder, options)
    kept = [r for r in results if r.edits is not None]
    return Scored(
        ids=[r.id for r in kept],
        references=[r.reference or "" for r in kept],
        hypotheses=[r.hypothesis for r in kept],
        edits=np.array([r.edits for r in kept]),
        lengths=np.array([len(r.reference or "") for r in kept]),
    )


def pipeline_run(
    options: CompressOptions,
    model_md5: str,
    lock: Path = Path("dvc.lock"),
    compare: Path = Path("metrics/compare.json"),
) -> dict[str, Any] | None:
    """The compare stage's scores of this seed's three models, or None where they are not this run's.

    They are this run's when ``options`` are the pipeline's (seed included) and ``dvc.lock``
    names both the trained model (``model_md5``, the run's provenance) and ``compare`` as it is on disk: then
    the compress, quantize, evaluate and compare stages already made and scored exactly what
    ``measure`` would.
    """
    if options != compress_options(load_params(), None) or not compare.exists():
        return None
    outs = locked_outputs(lock)
    if outs.get("models/model.pt") != model_md5 or outs.get("metrics/compare.json") != file_md5(compare):
        return None
    scores = json.loads(compare.read_text())
    run: dict[str, Any] = {name: {} for name in (CONTROL, *COMPRESSED)}
    for name in run:
        for split in SPLITS:
            run[name][split] = {"cer": scores[name][split]["cer"]}
            if name != CONTROL:
                run[name][split]["vs_control"] = scores[name][split][f"vs_{CONTROL}"]
    return run


def mean_gaps(seeds: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per compressed model and split, the mean over seeds of the relative CER gap to the control."""
    return {
        variant: {
            split: round(
                sum(run[variant][split]["vs_control"]["relative_difference"] for run in seeds.values()) / len(seeds), 4
            )
            for split in SPLITS
        }
        for variant in COMPRESSED
    }


def seeds_block(report: dict[str, Any]) -> str:
    """The README's table of the seeds' runs, markers included."""
    machine = report["machine"]
    header = ["seed", *(f"{CONTROL} {split}" for split in SPLITS)]
    header += [f"{variant} {split}" for variant in COMPRESSED for split in SPLITS]
    lines = [
        SEEDS_BEGIN,
        "",
        f"CER of the control and each compressed model's gap to that seed's control, relative, with its 95 % "
        f"paired-bootstrap interval; {report['options']['steps']} steps; {machine_words(machine)}"
        f", {report['seconds'] / 60:.0f} min in all{reused_words(report)}:",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for seed, run in report["seeds"].items():
        cells = [seed, *(f"{run[CONTROL][split]['cer']:.4f}" for split in SPLITS)]
        for variant in COMPRESSED:
            for split in SPLITS:
                versus = run[variant][split]["vs_control"]
                cells.append(
                    f"{versus['relative_difference'] * 100:+.2f} % "
                    f"[{versus['relative_ci95_low'] * 100:+.2f}, {versus['relative_ci95_high'] * 100:+.2f}]"
                )
        lines.append("| " + " | ".join(cells) + " |")
    means = report["mean_gaps"]
    cells = ["mean", "", "", *(f"{means[v][s] * 100:+.2f} %" for v in COMPRESSED for s in SPLITS)]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", SEEDS_END])


def reused_words(report: dict[str, Any]) -> str:
    """Which rows were read from the pipeline's ``metrics/compare.json`` rather than measured."""
    reused = report.get("from_pipeline", [])
    if not reused:
        return ""
    return f" (seed {', '.join(map(str, reused))}: the pipeline's own run, read from `metrics/compare.json`)"


def changes(assignments: list[str]) -> dict[str, Any]:
    """``--set``'s ``KEY=VALUE`` pairs, each value read as YAML like ``dvc exp run -S``'s."""
    parsed = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key:
            raise SystemExit(f"error: --set {assignment!r} is not KEY=VALUE (e.g. teacher=control)")
        parsed[key] = yaml.safe_load(value)
    return parsed


def provenance(options: CompressOptions, checkpoint: Path) -> dict[str, Any]:
    """What a report's seeds must share to sit in one table: the machine, the trained model, the options,
    the precision as it resolves here (``auto`` is bf16 or fp32 by the CPU: ``train.resolve_precision``)."""
    precision = resolve_precision(options.precision, choose_device(TrainOptions(device=options.device)))
    recorded = {**dataclasses.asdict(options), "precision": precision}
    return {
        "machine": hardware_stamp(),
        "model_md5": file_md5(checkpoint),
        "options": {key: value for key, value in recorded.items() if key != "seed"},
    }


def check_addable(report: dict[str, Any], own: dict[str, Any], seeds: list[int]) -> None:
    """Refuses, before anything is measured, seeds that would not belong in ``report``'s table; ``own``:
    this run's provenance."""
    for key in ("model_md5", "options"):
        if report[key] != own[key]:
            raise SystemExit(f"error: the report's {key} is not this run's: run every seed again without --add")
    if any(report["machine"].get(key) != own["machine"].get(key) for key in ("cpu", "cpu_id")):
        raise SystemExit("error: the report was measured on another CPU: run every seed again without --add")
    shared = sorted(set(report["seeds"]) & {str(seed) for seed in seeds})
    if shared:
        raise SystemExit(f"error: the report already has seeds {shared}")


def merged(report: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``report`` with the seeds of ``more`` added (one table from runs made in several sittings)."""
    seeds = dict(sorted({**report["seeds"], **more["seeds"]}.items(), key=lambda item: int(item[0])))
    seconds = round(report["seconds"] + more["seconds"], 1)
    reused = sorted(report.get("from_pipeline", []) + more.get("from_pipeline", []))
    return {**report, "seeds": seeds, "from_pipeline": reused, "mean_gaps": mean_gaps(seeds), "seconds": seconds}


def measure(args: argparse.Namespace, options: CompressOptions, stamp: dict[str, Any]) -> dict[str, Any]:
    """Every seed's three models scored on dev and test, with what they were measured on (``stamp``)."""
    params = load_params()
    quant = build(QuantOptions, section(params, "quant"), "quant")
    decoder = Decoder(build(DecoderOptions, section(params, "decode"), "decode"), None)
    evaluation = build(EvalOptions, section(params, "eval"), "eval")
    comparison = build(CompareOptions, section(params, "compare"), "compare")
    card = {prop.key: prop.value for prop in load_onnx(args.model).metadata_props}
    train = Store(args.features / "train")
    splits = {split: Store(args.features / split) for split in SPLITS}
    started = time.perf_counter()
    seeds: dict[str, dict[str, Any]] = {}
    reused = []
    for seed in args.seeds:
        seeded = dataclasses.replace(options, seed=seed)
        run = pipeline_run(seeded, stamp["model_md5"])
        if run is not None:
            print(f"seed {seed}: the pipeline's run, read from metrics/compare.json", flush=True)
            seeds[str(seed)], reused = run, [*reused, seed]
            continue
        trained = load_model(args.checkpoint)
        pruned, control, _ = compress(trained, UtteranceSet(train), UtteranceSet(splits["dev"]), seeded)
        with tempfile.TemporaryDirectory() as folder:
            paths = {name: Path(folder, f"{name}.onnx") for name in (CONTROL, *COMPRESSED)}
            export(control, paths[CONTROL], card)
            export(pruned, paths["pruned_fp32"], card)
            quantize("pruned_int8", paths["pruned_fp32"], paths["pruned_int8"], quant, train)
            run: dict[str, Any] = {name: {} for name in paths}
            for split, store in splits.items():
                scores = {name: scored(store, path, decoder, evaluation) for name, path in paths.items()}
                for name, score in scores.items():
                    run[name][split] = {"cer": round(score.cer(), 6)}
                    if name != CONTROL:
                        run[name][split]["vs_control"] = paired_bootstrap(
                            score, scores[CONTROL], comparison.bootstrap_samples, comparison.seed
                        )
        seeds[str(seed)] = run
        print(json.dumps({seed: run}, indent=1), flush=True)
    return {
        **stamp,
        "seeds": seeds,
        "from_pipeline": reused,
        "mean_gaps": mean_gaps(seeds),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="fine-tuning steps (default: compress.steps)")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="other compress params, e.g. teacher=control"
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"), help="its card")
    parser.add_argument("--features", type=Path, default=Path("data/features"))
    parser.add_argument("--output", type=Path, default=Path("reports/compress_seeds.json"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--add", action="store_true", help="add the seeds' runs to the report at --output")
    parser.add_argument("--readme-only", action="store_true", help="write the README table from --output only")
    args = parser.parse_args()
    if args.readme_only:
        report = json.loads(args.output.read_text())
    else:
        options = compress_options(load_params(), args.steps, changes(args.set))
        stamp = provenance(options, args.checkpoint)
        if args.add:
            earlier = json.loads(args.output.read_text())
            check_addable(earlier, stamp, args.seeds)
            report = merged(earlier, measure(args, options, stamp))
        else:
            report = measure(args, options, stamp)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    block = seeds_block(report)
    args.readme.write_text(readme_with(args.readme.read_text(encoding="utf-8"), block, SEEDS_BEGIN, SEEDS_END))


if __name__ == "__main__":
    main()
