"""The README's table of distillation weight 0.2 against 0.5: each run's own scores, on the same utterances."""

import json

from helpers import EIGHT_BIT_RUN, REPO, ZEN5_RUN, readme_words, signed

VARIANTS = ("fp32_finetuned", "pruned_fp32", "pruned_int8")


def test_the_comparison_is_of_the_zen5_runs_scores_against_the_8_bit_runs_and_the_readme_quotes_it():
    """Both runs made pruned_int8 with 8-bit weights, so that the weight was the one change."""
    before = json.loads((ZEN5_RUN / "compare.json").read_text())
    after = json.loads((EIGHT_BIT_RUN / "compare.json").read_text())
    readme = readme_words()
    for variant in VARIANTS:
        report = json.loads((REPO / "reports" / "distill_weight_0.2_vs_0.5" / f"{variant}.json").read_text())
        for split, row in report.items():
            assert row["reference_cer"] == before[variant][split]["cer"], (variant, split)
            assert row["candidate_cer"] == after[variant][split]["cer"], (variant, split)
        for split in ("dev", "test"):
            row = report[split]
            change = signed(100 * row["relative_difference"])
            interval = f"[{signed(100 * row['relative_ci95_low'])}, {signed(100 * row['relative_ci95_high'])}]"
            quoted = f"{row['reference_cer']:.4f} → {row['candidate_cer']:.4f}, {change} % {interval}"
            assert quoted in readme, (variant, split, quoted)
