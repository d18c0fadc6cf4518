"""Two runs' per-utterance scores on the same utterances: CER of each and the paired-bootstrap difference.

    python tools/compare_scores.py REFERENCE_DIR CANDIDATE_DIR [--output FILE.json]

Each folder holds ``<split>.csv`` files as the evaluate stage writes them
(``plots/eval/<variant>/``). The pipeline compares variants of one trained model; when the
training corpus changes (``data.synth.texts``, ``data.synth.augment``), dev and test change
with it, so REPORT.md cannot say whether the new model beats the old one on the old
utterances. Keep the old features and scores aside, score the new model on the old
features, and compare::

    git show OLD:plots/eval/fp32/test.csv > old/test.csv          # and the other splits
    python stages/evaluate.py fp32 --features old_features --metrics-dir new/m --plots-dir new/p
    python tools/compare_scores.py old new/p/fp32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechquant.compare import Scored, describe_difference, paired_bootstrap


def compare(reference_dir: Path, candidate_dir: Path, samples: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Per split found in both folders: each CER and the candidate's difference to the reference."""
    splits = sorted({p.stem for p in reference_dir.glob("*.csv")} & {p.stem for p in candidate_dir.glob("*.csv")})
    if not splits:
        raise SystemExit(f"error: no <split>.csv in both {reference_dir} and {candidate_dir}")
    results = {}
    for split in splits:
        reference, candidate = Scored.read(reference_dir / f"{split}.csv"), Scored.read(candidate_dir / f"{split}.csv")
        if reference.ids != candidate.ids:
            raise SystemExit(f"error: {split}: the folders score different utterances; compare on the same features")
        results[split] = {
            "utterances": len(reference.ids),
            "reference_cer": round(reference.cer(), 6),
            "candidate_cer": round(candidate.cer(), 6),
            **paired_bootstrap(candidate, reference, samples, seed),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--output", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    results = compare(args.reference, args.candidate, args.samples)
    print(f"{'split':<18} {'utts':>5} {'reference':>9} {'candidate':>9}  candidate vs reference (95% interval)")
    for split, r in results.items():
        line = f"{split:<18} {r['utterances']:>5} {r['reference_cer']:>9.4f} {r['candidate_cer']:>9.4f}"
        print(f"{line}  {describe_difference(r)}")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
