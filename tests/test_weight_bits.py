"""7-bit weights against 8-bit on the committed run's own models: what changed, and what the README says."""

import json

import pytest

from helpers import EIGHT_BIT_RUN, REPO, readme_words, signed
from speechquant.lock import locked_outputs
from speechquant.quantize import QuantOptions

SIGNED = ("static_int8", "static_semi_int8", "dynamic_int8_s8", "qat_int8", "auto_int8", "pruned_int8")
UNSIGNED = ("dynamic_int8", "dynamic_semi_int8")
COMPARED = REPO / "reports" / "weight_bits_8_vs_7"


def test_only_the_signed_int8_files_changed_between_the_two_runs():
    before, after = locked_outputs(EIGHT_BIT_RUN / "dvc.lock"), locked_outputs(REPO / "dvc.lock")
    for path in ("models/model.pt", "models/quantized/fp32.onnx", "models/quantized/pruned_fp32.onnx"):
        assert before[path] == after[path], path  # the same trained and compressed models
    for variant in UNSIGNED:  # uint8 weights: exact everywhere, made as before
        assert before[f"models/quantized/{variant}.onnx"] == after[f"models/quantized/{variant}.onnx"], variant
    for variant in SIGNED:
        assert before[f"models/quantized/{variant}.onnx"] != after[f"models/quantized/{variant}.onnx"], variant


@pytest.mark.parametrize("variant", SIGNED)
def test_the_committed_signed_variants_hold_7_bit_weights(variant):
    assert QuantOptions().weight_bits == 7
    made = json.loads((REPO / "metrics" / "quantize" / f"{variant}.json").read_text())
    assert made["int8_weight_max"] == 64


@pytest.mark.parametrize("variant", SIGNED)
def test_the_comparison_is_of_the_two_runs_scores_and_the_readme_quotes_it(variant):
    before = json.loads((EIGHT_BIT_RUN / "compare.json").read_text())[variant]
    after = json.loads((REPO / "metrics" / "compare.json").read_text())[variant]
    report = json.loads((COMPARED / f"{variant}.json").read_text())
    assert sorted(report) == sorted(after) == sorted(before)  # every split, as the evaluate stage scores them
    cells = []
    for split, row in report.items():
        assert row["reference_cer"] == before[split]["cer"], split
        assert row["candidate_cer"] == after[split]["cer"], split
        interval = f"[{signed(100 * row['relative_ci95_low'])}, {signed(100 * row['relative_ci95_high'])}]"
        cells.append(f"{signed(100 * row['relative_difference'])} % {interval}")
    assert f"| `{variant}` | {' | '.join(cells)} |" in readme_words()


def test_the_readme_quotes_what_7_bits_cost_from_both_runs_files():
    """Fidelity, QAT's fine-tune, download sizes and QAT's gap to fp32: read from each run's kept files."""
    sensitivity = {
        "before": json.loads((EIGHT_BIT_RUN / "sensitivity.json").read_text()),
        "after": json.loads((REPO / "metrics" / "sensitivity.json").read_text()),
    }
    kl = [sensitivity[run]["search"][0]["kl"] for run in ("before", "after")]
    assert all(sensitivity[run]["search"][0]["float_layers"] == [] for run in sensitivity)  # auto_int8 = static
    readme = readme_words()
    assert f"on the whole dev split {kl[0]:.5f} → {kl[1]:.5f}, `metrics/sensitivity.json`" in readme
    before, after = (
        json.loads((EIGHT_BIT_RUN / "quantize" / "qat_int8.json").read_text()),
        json.loads((REPO / "metrics" / "quantize" / "qat_int8.json").read_text()),
    )
    assert (
        f"moved its dev greedy CER from {after['qat_dev_cer_before']:.4f} to {after['qat_dev_cer_after']:.4f} "
        f"where on the 8-bit grid they took it from {before['qat_dev_cer_before']:.4f} to "
        f"{before['qat_dev_cer_after']:.4f}"
    ) in readme
    sizes = {
        variant: [
            json.loads((folder / f"{variant}.json").read_text())["gzip_mb"]
            for folder in (EIGHT_BIT_RUN / "quantize", REPO / "metrics" / "quantize")
        ]
        for variant in ("static_int8", "pruned_int8")
    }
    assert f"downloads as {sizes['static_int8'][1]:.2f} MB gzipped instead of {sizes['static_int8'][0]:.2f}" in readme
    assert f"`pruned_int8` {sizes['pruned_int8'][1]:.2f} instead of {sizes['pruned_int8'][0]:.2f}" in readme
    gaps = [
        json.loads((folder / "compare.json").read_text())["qat_int8"]["dev"]["vs_fp32"]
        for folder in (EIGHT_BIT_RUN, REPO / "metrics")
    ]
    assert gaps[1]["measurable"] and not gaps[0]["measurable"]
    assert (
        f"it is {gaps[1]['relative_difference']:+.2%} against fp32 on dev, measurably worse; with 8-bit weights it "
        f"was {gaps[0]['relative_difference']:+.2%}, level".replace("%", " %")
    ) in readme
