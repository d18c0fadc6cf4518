"""Comparing variants on the same utterances: CER differences against a reference variant
with paired bootstrap intervals, and the best, typical and worst examples.

The bootstrap is paired (each resample takes the same utterances for both variants), so
the interval measures the quantization's effect, not the luck of which utterances a
split happens to hold.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechquant.errors import UserError
from speechquant.params import Checked, limits


@dataclass(frozen=True)
class CompareOptions(Checked):
    reference: str = "fp32"  # the variant every other one is compared with (one of quant.variants)
    bootstrap_samples: int = field(default=1000, metadata=limits(1, 1_000_000))
    seed: int = field(default=0, metadata=limits(0))


@dataclass(frozen=True)
class Scored:
    """One variant's per-utterance edits on one split, in the split's utterance order."""

    ids: list[str]
    references: list[str]
    hypotheses: list[str]
    edits: np.ndarray
    lengths: np.ndarray  # reference characters
    frames: np.ndarray | None = None  # input feature frames, where the scores file has them

    @classmethod
    def read(cls, path: Path) -> Scored:
        with open(path, encoding="utf-8", newline="") as file:
            rows = [row for row in csv.DictReader(file) if row["edits"] != ""]
        return cls(
            ids=[row["id"] for row in rows],
            references=[row["reference"] for row in rows],
            hypotheses=[row["hypothesis"] for row in rows],
            edits=np.array([int(row["edits"]) for row in rows], dtype=np.int64),
            lengths=np.array([len(row["reference"]) for row in rows], dtype=np.int64),
            frames=np.array([int(row["frames"]) for row in rows], dtype=np.int64),
        )

    def cer(self) -> float:
        return float(self.edits.sum() / max(self.lengths.sum(), 1))


def paired_bootstrap(variant: Scored, reference: Scored, samples: int, seed: int) -> dict[str, Any]:
    """CER(variant) - CER(reference), its 95% percentile interval over paired resamples, and
    whether the interval excludes zero (``measurable``): a difference inside its interval's
    reach of zero is no measurable change, never a ranking.
    """
    if variant.ids != reference.ids:
        raise ValueError("the two variants were not scored on the same utterances")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(variant.ids), size=(samples, len(variant.ids)))
    characters = np.maximum(reference.lengths[picks].sum(axis=1), 1)
    differences = (variant.edits[picks].sum(axis=1) - reference.edits[picks].sum(axis=1)) / characters
    low, high = np.percentile(differences, [2.5, 97.5])
    reference_cer = max(reference.cer(), 1e-12)
    return {
        "cer_difference": round(variant.cer() - reference.cer(), 6),
        "ci95_low": round(float(low), 6),
        "ci95_high": round(float(high), 6),
        "relative_difference": round((variant.cer() - reference.cer()) / reference_cer, 4),
        "relative_ci95_low": round(float(low) / reference_cer, 4),
        "relative_ci95_high": round(float(high) / reference_cer, 4),
        "measurable": bool(low > 0 or high < 0),
    }


def describe_difference(versus: dict[str, Any]) -> str:
    """A bootstrap result in words, e.g. "+0.46 % (-0.47 %, +1.40 %): no measurable change"."""
    low, high = versus["relative_ci95_low"], versus["relative_ci95_high"]
    interval = f"{versus['relative_difference']:+.2%} ({low:+.2%}, {high:+.2%})"
    if not versus["measurable"]:
        return f"{interval}: no measurable change"
    return f"{interval}: {'worse' if versus['cer_difference'] > 0 else 'better'}"


def examples(scored: Scored) -> dict[str, dict[str, Any]]:
    """The study's section 6.4 trio: lowest, closest-to-overall and highest per-utterance CER.

    Ties go to the longer utterance: a long perfect transcript says more than a short one.
    """
    rates = scored.edits / np.maximum(scored.lengths, 1)
    longest_first = np.argsort(-scored.lengths, kind="stable")
    picks = {
        "best": longest_first[np.argmin(rates[longest_first])],
        "typical": longest_first[np.argmin(np.abs(rates[longest_first] - scored.cer()))],
        "worst": longest_first[np.argmax(rates[longest_first])],
    }
    return {
        kind: {
            "id": scored.ids[i],
            "cer": round(float(rates[i]), 4),
            "edits": int(scored.edits[i]),
            "reference": scored.references[i],
            "hypothesis": scored.hypotheses[i],
        }
        for kind, i in picks.items()
    }


def compare_variants(
    metrics: dict[str, dict],
    scored: dict[tuple[str, str], Scored],
    variants: list[str],
    splits: list[str],
    options: CompareOptions,
    controls: dict[str, str] | None = None,
) -> tuple[dict[str, dict[str, dict]], list[dict[str, Any]]]:
    """Each variant's scores per split with its paired-bootstrap CER difference to the reference
    (and to its control in ``controls``: a fine-tuned variant against the model fine-tuned as
    long without compression), and one bar per (variant, split) for the CER plot."""
    if options.reference not in variants:
        raise UserError(f"compare.reference {options.reference!r} is not one of quant.variants {variants}")
    summary: dict[str, dict[str, dict]] = {}
    bars = []
    for variant in variants:
        summary[variant] = {}
        for split in splits:
            split_metrics = metrics[variant][split]
            entry = {key: split_metrics[key] for key in ("cer", "wer", "levenshtein_mean", "ctc_loss", "scored")}
            if variant != options.reference and split_metrics["scored"]:
                entry["vs_" + options.reference] = paired_bootstrap(
                    scored[variant, split], scored[options.reference, split], options.bootstrap_samples, options.seed
                )
            control = (controls or {}).get(variant)
            if control and split_metrics["scored"]:
                entry["vs_" + control] = paired_bootstrap(
                    scored[variant, split], scored[control, split], options.bootstrap_samples, options.seed
                )
            summary[variant][split] = entry
            bars.append({"model": f"{variant} ({split})", "variant": variant, "split": split, "cer": entry["cer"]})
    return summary, bars
