"""The written results: REPORT.md and the README's results block, from the metrics files only.

Nothing here measures anything. Every number a reader sees is read from a file an
earlier stage wrote, so the README and the report cannot drift from `dvc metrics show`:
``tests/test_summary.py`` fails when the README's block differs from what this module
writes from the committed metrics. A CER difference whose paired-bootstrap interval
holds zero is written as "no measurable change", never as a ranking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechquant.benchmark import PYTORCH
from speechquant.compare import CompareOptions, Scored, describe_difference, examples, paired_bootstrap
from speechquant.splits import OUT_OF_DOMAIN_SPLITS
from speechquant.variants import CONTROL

HEADLINE = "batch1_10s_1thread"  # the latency configuration the targets are stated at
README_BEGIN = "<!-- results: written by the report stage from metrics/; do not edit by hand -->"
README_END = "<!-- end of results -->"

# The study's published results on HW4P2 dev (size in MB, average Levenshtein distance).
STUDY = {
    "fp32": {"size_mb": 94.5, "levenshtein_mean": 28.26},
    "dynamic_int8": {"size_mb": 23.7, "levenshtein_mean": 46.23},
    "dynamic_semi_int8": {"size_mb": 25.1, "levenshtein_mean": 28.96},
    "qat_int8": {"size_mb": 23.8, "levenshtein_mean": 60.5},
}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Results:
    """Every metrics file the written results quote, read from a checkout at ``root``."""

    root: Path
    variants: list[str]
    reference: str
    splits: list[str]
    bootstrap: CompareOptions
    evaluation: dict[str, dict[str, Any]]
    compare: dict[str, Any]
    benchmark: dict[str, Any]
    train: dict[str, Any]
    export: dict[str, Any]
    lm: dict[str, dict[str, Any]]  # "<variant>-<lm>" -> the evaluate_lm metrics
    sensitivity: dict[str, Any] | None
    skipped: dict[str, str]  # variants this machine could not run (bf16 without native bf16), with why
    made: dict[str, dict[str, Any]]  # metrics/quantize/<variant>.json: parameters, MACs, sizes

    @classmethod
    def load(cls, root: Path, params: dict[str, Any]) -> Results:
        variants = list(params["quant"]["variants"])
        eval_lm = params.get("eval_lm", {})
        lm_names = [f"{v}-{lm}" for v in eval_lm.get("variants", []) for lm in eval_lm.get("lms", [])]
        sensitivity = root / "metrics" / "sensitivity.json"
        evaluation = {v: _load(root / "metrics" / "eval" / f"{v}.json") for v in variants}
        skipped = {v: m["skipped"] for v, m in evaluation.items() if "skipped" in m}
        return cls(
            root=root,
            variants=[v for v in variants if v not in skipped],
            reference=params["compare"]["reference"],
            splits=list(params["eval"]["splits"]),
            bootstrap=CompareOptions(**params["compare"]),
            evaluation=evaluation,
            compare=_load(root / "metrics" / "compare.json"),
            benchmark=_load(root / "metrics" / "benchmark.json"),
            train=_load(root / "metrics" / "train.json"),
            export=_load(root / "metrics" / "export.json"),
            lm={name: _load(root / "metrics" / "eval_lm" / f"{name}.json") for name in lm_names},
            sensitivity=_load(sensitivity) if sensitivity.exists() else None,
            skipped=skipped,
            made={v: _load(root / "metrics" / "quantize" / f"{v}.json") for v in variants},
        )

    def scored(self, folder: str, name: str, split: str) -> Scored:
        return Scored.read(self.root / "plots" / folder / name / f"{split}.csv")

    def timing(self, variant: str) -> dict[str, Any]:
        return self.benchmark["variants"].get(variant, {}).get("latency", {}).get(HEADLINE, {})


def decoder_words(decoder: dict[str, Any] | None) -> str:
    """How the hypotheses were decoded, in words, from the decoder options an evaluation recorded."""
    if not decoder:
        return "decoder not recorded"
    if decoder["method"] == "greedy":
        return "greedy (best path) decoding"
    lm = "no LM" if decoder["lm"] == "none" else f"{decoder['lm']} n-gram LM (weight {decoder['lm_weight']})"
    return f"beam search (beam {decoder['beam_size']}), {lm}"


def machine_words(results: Results) -> str:
    hardware = results.benchmark["hardware"]
    isa = hardware.get("isa") or ", ".join(f for f, on in hardware["flags"].items() if on)
    cpu = f"{hardware['cpu']} ({hardware['cpu_id']})" if hardware.get("cpu_id") else hardware["cpu"]
    return f"{cpu}, {hardware['cores']} cores ({isa}), onnxruntime {hardware['onnxruntime']}"


def _versus(results: Results, variant: str, split: str) -> str:
    if variant == results.reference:
        return "reference"
    versus = results.compare[variant][split].get(f"vs_{results.reference}")
    return describe_difference(versus) if versus else "-"


def variant_table(results: Results, detailed: bool) -> list[str]:
    """One row per variant: size, accuracy with its interval against the reference, latency."""
    reference, nan = results.reference, float("nan")
    extra = ["dev WER", "dev avg Lev", "RTF"] if detailed else []
    header = [
        "variant",
        "size MB",
        "x smaller",
        "dev CER",
        "test CER",
        f"dev CER vs {reference} (95% CI)",
        *extra,
        "latency ms",
        "speed-up",
    ]
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    for v in results.variants:
        dev, test = results.evaluation[v]["dev"], results.evaluation[v].get("test", {})
        size, timing = results.benchmark["variants"][v], results.timing(v)
        cells = [
            v,
            f"{size['size_mb']:.2f}",
            f"{size['size_ratio_vs_fp32']:.2f}x",
            optional_number(dev["cer"]),
            optional_number(test.get("cer")),
            _versus(results, v, "dev"),
        ]
        if detailed:
            cells += [
                optional_number(dev["wer"]),
                optional_number(dev["levenshtein_mean"], 2),
                optional_number(timing.get("rtf")),
            ]
        cells += [f"{timing.get('latency_ms_p50', nan):.1f}", f"{timing.get('speedup_vs_fp32', nan):.2f}x"]
        lines.append(f"| {' | '.join(cells)} |")
    pytorch = results.timing(PYTORCH)
    if pytorch:
        blanks = [""] * (len(header) - 3)
        lines.append(
            f"| PyTorch eager fp32 | {' | '.join(blanks)} | {pytorch['latency_ms_p50']:.1f} | "
            f"{pytorch['speedup_vs_fp32']:.2f}x |"
        )
    return lines


def lm_table(results: Results) -> list[str]:
    """Each LM decode against the same variant decoded without it, paired on the same utterances."""
    if not results.lm:
        return []
    lines = [
        "| variant | decoder | dev CER | dev WER | test CER | dev CER vs no LM (95% CI) | decoded utt/s (dev) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, metrics in results.lm.items():
        variant = name.rsplit("-", 1)[0]
        dev, test = metrics["dev"], metrics.get("test", {})
        versus = paired_bootstrap(
            results.scored("eval_lm", name, "dev"),
            results.scored("eval", variant, "dev"),
            results.bootstrap.bootstrap_samples,
            results.bootstrap.seed,
        )
        scores = " | ".join(optional_number(value) for value in (dev["cer"], dev["wer"], test.get("cer")))
        lines.append(
            f"| {variant} | {decoder_words(metrics.get('decoder'))} | {scores} | "
            f"{describe_difference(versus)} | {dev['decoded_per_second']} |"
        )
    return lines


def context_lines(results: Results) -> list[str]:
    """What the numbers were measured on and with, each quoted from the file that holds it."""
    train, export = results.train, results.export
    dev, test = (results.evaluation[results.reference].get(split, {}) for split in ("dev", "test"))
    decoder = decoder_words(results.evaluation[results.reference].get("decoder"))
    return [
        f"- Machine: {machine_words(results)} (`metrics/benchmark.json`).",
        f"- Data: {dev.get('scored', '-')} dev / {test.get('scored', '-')} test utterances scored; "
        f"{decoder} (`metrics/eval/`).",
        f"- Model: {train['preset']} preset, {train['parameters']:,} parameters, {train['epochs']} epochs "
        f"in {train['wall_seconds'] / 60:.1f} min on {train['device']} ({train['precision']}, "
        f"{train['processes']} process x {train['threads']} threads); best dev CER during training "
        f"{train['best_dev_cer']:.4f} (greedy, PyTorch) (`metrics/train.json`).",
        f"- Export: largest log-prob difference ONNX vs PyTorch {export['max_abs_logprob_diff_vs_pytorch']:.1e} "
        f"on {export['parity_utterances']} dev utterances (`metrics/export.json`).",
        f"- Latency: p50 at batch 1, 10 s of audio, 1 thread; every variant timed in the same interleaved "
        f"rounds; speed-up and size against {results.reference}.",
    ]


def readme_block(results: Results) -> str:
    """The README's results section body, between its markers."""
    lines = [README_BEGIN, "", *context_lines(results), "", *variant_table(results, detailed=False), ""]
    lines += skipped_lines(results.skipped)
    if advice := shipping_advice(results):
        lines += ["What to ship here, by the rule in *Benchmark and report* below:", "", *advice, ""]
    if results.lm:
        lines += ["Decoding with the n-gram LMs of the `lm` stage (`evaluate_lm`):", "", *lm_table(results), ""]
    return "\n".join([*lines, README_END])


def replace_readme_block(readme: str, block: str) -> str:
    """``readme`` with the text between its results markers replaced by ``block``."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError("the README has no results markers")
    return readme[:start] + block + readme[end + len(README_END) :]


def readme_results(readme: str) -> str:
    """The results block currently in ``readme``, markers included."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    return readme[start : end + len(README_END)] if 0 <= start < end else ""


def report_markdown(results: Results, figures: Path) -> str:
    """REPORT.md: every variant, the study beside us, intervals, examples, LM decoding, sensitivity."""
    lines = [
        "# speechquant report",
        "",
        "Generated by `dvc repro` (stage `report`) from `metrics/`; do not edit by hand.",
        "",
        *context_lines(results),
        "",
        "## Every variant",
        "",
        *variant_table(results, detailed=True),
        "",
        *skipped_lines(results.skipped),
        "## Against the study",
        "",
        *study_table(results),
        "",
        "## CER differences (paired bootstrap, 95% interval, relative to the reference's CER)",
        "",
    ]
    for split in results.splits:
        lines += [f"- {split}, {v}: {_versus(results, v, split)}" for v in results.variants if v != results.reference]
    if any(split in OUT_OF_DOMAIN_SPLITS for split in results.splits):
        lines += ["", "## Under domain shift: in-domain dev against the out-of-domain dev sets", ""]
        lines += domain_shift_table(results)
    if results.lm:
        lines += ["", "## Decoding with an n-gram LM", "", *lm_table(results)]
    if CONTROL in results.variants:
        lines += [
            "",
            "## Fewer multiply-accumulates: compression, and the fine-tuning control",
            "",
            *compression_table(results),
        ]
    if "openvino" in results.benchmark.get("runtimes", {}):
        lines += ["", "## Two runtimes, and the distance to the machine's peak", "", *runtime_table(results)]
        lines += ["", "### What to ship on this machine", "", *shipping_advice(results)]
    lines += ["", "## Examples (dev, as the study's section 6.4)", ""]
    for v in (results.reference, "static_int8"):
        if v in results.variants:
            lines += [f"### {v}", "", *example_lines(results.scored("eval", v, "dev")), ""]
    if results.sensitivity is not None:
        lines += sensitivity_section(results)
    lines += ["## Figures", ""]
    for name, caption in figure_captions(results).items():
        if name != "sensitivity":  # shown in its own section above
            lines += [f"![{name}]({figures.as_posix()}/{name}.png)", "", f"*{caption}.*", ""]
    return "\n".join(lines)


def figure_captions(results: Results) -> dict[str, str]:
    """Each figure's caption, by file name: what it shows, on which split, decoder and CPU."""
    hardware = results.benchmark["hardware"]
    cpu = f"{hardware['cpu']}, {hardware['cores']} cores ({hardware.get('isa', '')})"
    decoder = decoder_words(results.evaluation[results.reference].get("decoder"))
    subset = (results.sensitivity or {}).get("dev_subset_utterances", "")
    return {
        "size_latency_cer": f"Dev CER against size and p50 latency (batch 1, 10 s, 1 thread), {decoder}; {cpu}",
        "latency_vs_batch": f"p50 latency by batch size (middle audio length, 1 thread); {cpu}",
        "training": f"Training: CTC loss (train, dev) and greedy dev CER by epoch, on {results.train['device']}",
        "cer_by_length": f"Dev CER by utterance length (bins of equal count), {decoder}",
        "sensitivity": (
            f"Relative dev CER change, only this layer or all but it int8; {subset} dev utterances, {decoder}"
        ),
    }


def _timed(row: dict[str, Any] | None) -> str:
    """A latency cell: p50 ms, speed-up against ORT fp32 with its 95% interval."""
    if not row:
        return "-"
    low, high = row.get("speedup_ci95", [float("nan")] * 2)
    return f"{row['latency_ms_p50']:.1f} ({row['speedup_vs_fp32']:.2f}x [{low:.2f}, {high:.2f}])"


def _share(row: dict[str, Any] | None) -> str:
    return f"{row['share_of_peak']:.0%}" if row and "share_of_peak" in row else "-"


def domain_shift_table(results: Results) -> list[str]:
    """Each variant's CER on dev and on each out-of-domain dev set, with its paired-bootstrap change
    against the reference on the same utterances: whether quantization costs more under shift."""
    splits = ["dev", *(split for split in OUT_OF_DOMAIN_SPLITS if split in results.splits)]
    reference = results.evaluation[results.reference]
    if not all(reference.get(split, {}).get("scored") for split in splits):
        return ["The corpus has no out-of-domain utterances (they are built by `data.source: synth` only)."]
    dev_cer = reference["dev"]["cer"]
    ratios = ", ".join(f"{split} {reference[split]['cer'] / dev_cer:.2f}x" for split in splits[1:])
    lines = [
        f"`dev_unseen_text`: sentences of a text domain training never saw (the Jargon File), spoken as dev is; "
        f"`dev_unseen_voice`: dev's sentences by held-out espeak-ng voices, faster, in a far-field room with "
        f"brown noise (`data.synth.held_out`). {results.reference}'s CER against its in-domain dev CER: {ratios}.",
        "",
        "| variant | " + " | ".join(f"{split} CER | change vs {results.reference}" for split in splits) + " |",
        "| --- | " + " | ".join("---: | ---" for _ in splits) + " |",
    ]
    for v in results.variants:
        evaluation = results.evaluation[v]
        if "skipped" in evaluation:
            continue
        cells = [
            f"{optional_number(evaluation.get(split, {}).get('cer'))} | {_versus(results, v, split)}"
            for split in splits
        ]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines


def runtime_table(results: Results) -> list[str]:
    """Every variant in ONNX Runtime and OpenVINO at the headline configuration: latency with
    its speed-up interval, the share of the one-core GEMM peak, and the precision OpenVINO's
    convolutions ran in; then the bf16 row and what was skipped."""
    openvino = results.benchmark["runtimes"]["openvino"]
    peak = results.benchmark["hardware"].get("one_core_gemm", {})
    aa = [entry["aa_ratio"] for entry in results.benchmark.get("controls", {}).get("aa", {}).values()]
    version = str(openvino["version"]).split("-")[0]
    lines = [
        f"Batch 1, 10 s of audio, 1 thread, on {machine_words(results)}; OpenVINO {version} "
        "at f32 inference precision (int8 files run int8). Cells: p50 ms (speed-up against ONNX Runtime "
        "fp32, 95% interval over rounds). Share of peak: the time ONNX Runtime's own one-core GEMM "
        f"({peak.get('fp32_gmacs', '-')} GMAC/s fp32, {peak.get('int8_gmacs', '-')} GMAC/s uint8 x int8) "
        "would need for the call's multiply-accumulates, over the measured time; above 100%: faster "
        "than that GEMM (OpenVINO's oneDNN convolutions can be)."
        + (
            f" A/A control (fp32 against itself) over every configuration: {min(aa):.3f} to {max(aa):.3f}."
            if aa
            else ""
        ),
        "",
        "| variant | ONNX Runtime | share of peak | OpenVINO | share of peak | OpenVINO convolutions |",
        "|---|---|---|---|---|---|",
    ]
    rows = openvino["rows"]
    for variant in [*results.variants, *[name for name in rows if name not in results.variants]]:
        ours = results.timing(variant) or None
        entry = results.benchmark["variants"].get(variant, {})
        if "openvino_kernels" in entry:  # made for OpenVINO (bf16): its own row is OpenVINO's
            ours, theirs = None, {**entry["openvino_kernels"], "latency": {HEADLINE: results.timing(variant)}}
        else:
            theirs = rows.get(variant, {})
        timing = theirs.get("latency", {}).get(HEADLINE)
        kernels = ", ".join(f"{count} {kind.split(':')[1]}" for kind, count in theirs.get("precisions", {}).items())
        lines.append(
            f"| {variant} | {_timed(ours)} | {_share(ours)} | {_timed(timing)} | {_share(timing)} | {kernels or '-'} |"
        )
    for name, reason in {**openvino.get("skipped", {}), **results.skipped}.items():
        lines.append(f"| {name} | | | skipped: {reason} | | |")
    has_amx = results.benchmark["hardware"]["flags"].get("amx_int8")
    amx = "used" if openvino.get("amx_used") else "not used" + ("" if has_amx else " (this CPU has none)")
    lines += [
        "",
        f"AMX, read from the oneDNN primitives OpenVINO chose for its convolutions: {amx}. ONNX Runtime "
        "names no kernel it runs; on an AMX CPU its one-core int8 GEMM peak above is the evidence.",
    ]
    return lines


def compression_table(results: Results) -> list[str]:
    """Every variant's parameters, MACs per output frame, size on disk and gzip'd, headline
    latency, and test CER against fp32 and, for the fine-tuned ones, against fp32_finetuned."""
    lines = [
        f"Test CER differences: paired bootstrap, 95% interval, relative. `{CONTROL}` is the trained model "
        "fine-tuned for as many steps on the same data as the compressed one, uncompressed: a fine-tuned "
        "variant's gain over fp32 that it shares is extra training, not compression.",
        "",
        "| variant | parameters | MACs / output frame | MB | gzip MB | x smaller | latency ms | speed-up | "
        f"test CER | vs {results.reference} | vs {CONTROL} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for v in results.variants:
        made, size, timing = results.made[v], results.benchmark["variants"][v], results.timing(v)
        test = results.evaluation[v].get("test", {})
        control = results.compare[v].get("test", {}).get(f"vs_{CONTROL}")
        cells = [
            v,
            f"{made.get('parameters', 0):,}",
            f"{made.get('macs_per_output_frame', 0):,}",
            f"{size['size_mb']:.2f}",
            f"{made.get('gzip_mb', nan):.2f}",
            f"{size['size_ratio_vs_fp32']:.2f}x",
            f"{timing.get('latency_ms_p50', nan):.1f}",
            f"{timing.get('speedup_vs_fp32', nan):.2f}x",
            optional_number(test.get("cer")),
            _versus(results, v, "test"),
            describe_difference(control) if control else "-",
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return lines


def shipping_advice(results: Results) -> list[str]:
    """Which variant and runtime to ship on this machine, chosen from the metrics by one rule:
    the fastest one-thread row at the headline configuration whose dev CER is not measurably
    worse than the reference's; and the fastest such row that needs no int8 calibration."""
    openvino = results.benchmark.get("runtimes", {}).get("openvino", {}).get("rows", {})
    candidates = []  # (latency ms, variant, runtime, speed-up)
    for variant in results.variants:
        versus = results.compare[variant].get("dev", {}).get(f"vs_{results.reference}")
        if versus and versus["measurable"] and versus["cer_difference"] > 0:
            continue  # measurably worse on dev
        entry = results.benchmark["variants"].get(variant, {})
        own = results.timing(variant)
        if own:
            runtime = "OpenVINO" if "openvino_kernels" in entry else "ONNX Runtime"
            candidates.append((own["latency_ms_p50"], variant, runtime, own["speedup_vs_fp32"]))
        theirs = openvino.get(variant, {}).get("latency", {}).get(HEADLINE)
        if theirs:
            candidates.append((theirs["latency_ms_p50"], variant, "OpenVINO", theirs["speedup_vs_fp32"]))
    if not candidates:
        return []
    float_kinds = ("fp32", "fp16", "bf16")
    lines = [f"On {machine_words(results)}, batch 1, 10 s of audio, 1 thread; dev CER not measurably worse than fp32:"]
    for label, pool in (
        ("fastest", candidates),
        ("fastest without int8 calibration", [c for c in candidates if c[1] in float_kinds]),
    ):
        if pool:
            ms, variant, runtime, speedup = min(pool)
            lines.append(f"- {label}: `{variant}` in {runtime}, {ms:.1f} ms ({speedup:.2f}x ONNX Runtime fp32)")
    return lines


def study_table(results: Results) -> list[str]:
    rows = [
        "Relative changes against each side's own float32 model (the absolute numbers are on different data).",
        "",
        "| variant | study size MB | study avg Lev | study vs float | ours size MB | ours avg Lev | ours vs float |",
        "|---|---|---|---|---|---|---|",
    ]
    ours_float = results.evaluation[results.reference]["dev"]["levenshtein_mean"]
    for v, study in STUDY.items():
        if v not in results.variants:
            continue
        ours = results.evaluation[v]["dev"]["levenshtein_mean"]
        size = results.benchmark["variants"][v]["size_mb"]
        rows.append(
            f"| {v} | {study['size_mb']} | {study['levenshtein_mean']} | "
            f"{study['levenshtein_mean'] / STUDY['fp32']['levenshtein_mean'] - 1:+.1%} | {size:.2f} | "
            f"{ours:.2f} | {ours / ours_float - 1:+.1%} |"
        )
    return rows


def _change(row: dict[str, Any], key: str) -> str:
    measurable = row.get(key.replace("cer_change", "measurable"), True)
    return f"{row[key]:+.2%}" + ("" if measurable else " (n.s.)")


def sensitivity_section(results: Results) -> list[str]:
    """Per-layer table and the automatic choice set against the study's hand choice (conv0 in float)."""
    sensitivity = results.sensitivity
    assert sensitivity is not None
    chosen = sensitivity["auto_float_layers"]
    resolution = sensitivity.get("one_character_relative_change")
    lines = [
        "## Which layers to keep in float",
        "",
        f"On {sensitivity['dev_subset_utterances']} dev utterances (fp32 CER {sensitivity['fp32_cer']:.4f}"
        + (f"; one character changes it by {resolution:.3%}" if resolution else "")
        + "). Relative CER change against fp32 and mean per-frame KL(fp32 || variant); "
        "(n.s.): the paired-bootstrap interval holds zero, no measurable change.",
        "",
    ]
    every = sensitivity.get("all_layers_int8_vs_fp32")
    if every:
        lines += [f"Every layer int8: {describe_difference(every)}.", ""]
    lines += [
        "| layer | only this layer int8 | KL | all but this layer int8 | KL | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for layer, row in sensitivity["layers"].items():
        lines.append(
            f"| {layer} | {_change(row, 'only_this_layer_cer_change')} | {row['only_this_layer_kl']:.4f} | "
            f"{_change(row, 'all_but_this_layer_cer_change')} | {row['all_but_this_layer_kl']:.4f} | "
            f"{row['parameters']} |"
        )
    verdict = "meets" if sensitivity["auto_meets_budget"] else "does not meet"
    below = (
        " The budget is below one character's change on this subset."
        if sensitivity.get("budget_below_resolution")
        else ""
    )
    reference = results.reference
    lines += [
        "",
        f"Automatic choice (budget {sensitivity['max_cer_increase']:.1%} relative): keep "
        f"{', '.join(chosen) or 'no layer'} in float ({verdict} the budget on the subset; "
        f"{sensitivity['candidates_scored']} candidates scored in {sensitivity['seconds']:.0f} s)." + below,
        "",
        f"| variant | float layers | dev CER vs {reference} (95% CI) | test CER vs {reference} (95% CI) |",
        "|---|---|---|---|",
    ]
    for variant, layers in (
        ("static_semi_int8", "conv0 (the study's hand choice)"),
        ("auto_int8", ", ".join(chosen) or "none"),
    ):
        if variant in results.variants:
            cells = [_versus(results, variant, split) for split in ("dev", "test") if split in results.splits]
            lines.append(f"| {variant} | {layers} | {' | '.join(cells)} |")
    caption = figure_captions(results)["sensitivity"]
    return [*lines, "", "![sensitivity](reports/figures/sensitivity.png)", "", f"*{caption}.*", ""]


def example_lines(scored: Scored) -> list[str]:
    """The best, typical and worst examples as Markdown list items."""
    lines = []
    for kind, example in examples(scored).items():
        lines += [
            f"- **{kind}** `{example['id']}` (CER {example['cer']:.3f}, {example['edits']} edits)",
            f"  - reference:  {example['reference']}",
            f"  - hypothesis: {example['hypothesis']}",
        ]
    return lines


def skipped_lines(skipped: dict[str, str]) -> list[str]:
    """One line per variant not evaluated on this machine, and an empty line after them."""
    if not skipped:
        return []
    return [*(f"- **{variant}** not evaluated here: {reason}." for variant, reason in skipped.items()), ""]


def optional_number(value: float | None, digits: int = 4) -> str:
    """A table cell: the number, or ``-`` where a split had nothing to score."""
    return "-" if value is None else f"{value:.{digits}f}"


def evaluation_markdown(
    summary: dict,
    scored: dict[tuple[str, str], Scored],
    variants: list[str],
    splits: list[str],
    reference: str,
    skipped: dict[str, str] | None = None,
) -> str:
    """``reports/evaluation.md``: the scores per split, and the study's three examples per variant;
    ``skipped``: the variants this machine could not run, with why."""
    lines = ["# Evaluation", "", *skipped_lines(skipped or {})]
    for split in splits:
        lines += [
            f"## {split}",
            "",
            f"| variant | CER | WER | avg Levenshtein | CTC loss | CER vs {reference}, relative (95% CI) |",
            "|---|---|---|---|---|---|",
        ]
        for variant in variants:
            entry = summary[variant][split]
            versus = entry.get("vs_" + reference)
            difference = describe_difference(versus) if versus else "-"
            cells = [optional_number(entry[key]) for key in ("cer", "wer")]
            cells += [optional_number(entry[key], 2) for key in ("levenshtein_mean", "ctc_loss")]
            lines.append(f"| {variant} | {' | '.join(cells)} | {difference} |")
        lines.append("")
    lines += [f"## Examples ({splits[0]}, as the study's section 6.4)", ""]
    for variant in variants:
        if not scored[variant, splits[0]].ids:
            continue
        lines += [f"### {variant}", "", *example_lines(scored[variant, splits[0]]), ""]
    return "\n".join(lines)
