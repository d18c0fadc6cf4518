"""tools/equalize_effect.py: its fidelity measures mean what they say, and it compares the quantize stage's
own pruned_int8 with the same recipe unbalanced, refusing any other file."""

import json

import numpy as np
import pytest

from helpers import REPO, load_tool
from speechquant.batching import UtteranceSet
from speechquant.compress import factorize, input_moments
from speechquant.export import export, fold_batch_norm
from speechquant.lock import locked_outputs
from speechquant.params import build, load_params, section
from speechquant.quantize import QuantOptions, quantize
from speechquant.splits import ALL_SPLITS
from speechquant.store import Store


def test_fidelity_is_zero_divergence_and_full_agreement_for_the_same_outputs_and_counts_flipped_frames():
    tool = load_tool("equalize_effect")
    rng = np.random.default_rng(0)
    reference = [np.log(rng.dirichlet(np.ones(5), size=frames)) for frames in (7, 3)]
    assert tool.fidelity(reference, reference) == {"mean_kl": 0.0, "greedy_agreement": 1.0}
    flipped = [array.copy() for array in reference]
    best = flipped[1][0].argmax()
    flipped[1][0] = np.log(np.full(5, 0.01 / 4))
    flipped[1][0][(best + 1) % 5] = np.log(0.99)  # one of ten frames now prefers another class
    measured = tool.fidelity(reference, flipped)
    assert measured["greedy_agreement"] == pytest.approx(0.9)
    assert measured["mean_kl"] > 0


@pytest.fixture(scope="module")
def pipeline_layout(trained_like_model, exported, features, tmp_path_factory):
    """models/ and data/features/ as the pipeline leaves them, on the test's small model and split."""
    root = tmp_path_factory.mktemp("equalize_effect")
    models, splits = root / "models", root / "features"
    models.mkdir()
    splits.mkdir()
    for split in ALL_SPLITS:
        (splits / split).symlink_to(features.path, target_is_directory=True)
    folded = fold_batch_norm(trained_like_model)
    ranks = {"conv0": 16, "conv8": 24}
    export(
        factorize(folded, ranks, input_moments(folded, UtteranceSet(features), 2000, 0, list(ranks))),
        models / "pruned_fp32.onnx",
    )
    options = build(QuantOptions, section(load_params(), "quant"), "quant")
    quantize("pruned_int8", models / "pruned_fp32.onnx", models / "pruned_int8.onnx", options, features)
    quantize("static_int8", exported, models / "static_int8.onnx", options, features)
    return models, splits


def test_an_int8_copy_as_close_as_its_float_model_to_six_decimals_shows_no_relative_change():
    """On some CPUs a tiny model's int8 copy rounds to zero divergence: the table says so, not a crash."""
    tool = load_tool("equalize_effect")
    report = json.loads((REPO / "reports" / "equalize_effect.json").read_text())
    for way in ("unbalanced", "balanced"):
        report["fidelity"][way]["mean_kl"] = 0.0
    assert "| mean per-frame KL(float ‖ int8) | 0.00000 | 0.00000 | - |" in tool.effect_block(report)


def test_the_tool_measures_both_int8_models_on_every_split_and_the_balancing_on_each_layer(pipeline_layout, exported):
    models, splits = pipeline_layout
    measured = load_tool("equalize_effect").measure(models, splits, exported, utterances=5)
    assert set(measured["equalized"]) == {"conv0", "conv8"} and measured["utterances"] == 5
    assert set(measured["fidelity"]) == {"unbalanced", "balanced", "static_int8_vs_fp32"}
    for entry in measured["fidelity"].values():
        assert entry["mean_kl"] >= 0 and 0 < entry["greedy_agreement"] <= 1
    assert set(measured["cer"]) == set(section(load_params(), "eval")["splits"])
    for entry in measured["cer"].values():
        assert {"unbalanced", "balanced", "balanced_vs_unbalanced"} <= set(entry)
    machine = {"cpu": "a CPU", "isa": "AVX2", "cores": 2}
    block = load_tool("equalize_effect").effect_block({**measured, "machine": machine, "seconds": 60})
    kl = measured["fidelity"]["balanced"]["mean_kl"]
    assert f"{kl:.5f}" in block and "| CER dev_unseen_voice |" in block and "a CPU (AVX2), 2 cores, 1 min" in block


def test_a_pruned_int8_that_is_not_the_stage_recipes_is_refused(pipeline_layout, exported, tmp_path):
    """The report would otherwise describe a model the pipeline did not make."""
    models, splits = pipeline_layout
    other = tmp_path / "models"
    other.mkdir()
    for name in ("pruned_fp32", "static_int8"):
        (other / f"{name}.onnx").symlink_to(models / f"{name}.onnx")
    options = build(QuantOptions, section(load_params(), "quant"), "quant")
    source = models / "pruned_fp32.onnx"
    quantize("pruned_int8", source, other / "pruned_int8.onnx", options, Store(splits / "train"), balance=False)
    with pytest.raises(SystemExit, match="differs from"):
        load_tool("equalize_effect").measure(other, splits, exported, utterances=5)


def test_the_readme_table_is_the_committed_report_of_the_pipelines_own_pruned_int8():
    report = json.loads((REPO / "reports" / "equalize_effect.json").read_text())
    locked = locked_outputs(REPO / "dvc.lock")
    assert report["pruned_int8_md5"] == locked["models/quantized/pruned_int8.onnx"]
    assert report["source_md5"] == locked["models/quantized/pruned_fp32.onnx"]
    assert load_tool("equalize_effect").effect_block(report) in (REPO / "README.md").read_text(encoding="utf-8")
