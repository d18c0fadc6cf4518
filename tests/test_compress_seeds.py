"""tools/compress_seeds.py: its report is the pipeline's own run for the pipeline's seed, and the README shows it."""

import json

import yaml

from helpers import REPO, load_tool


def committed_report() -> dict:
    return json.loads((REPO / "reports" / "compress_seeds.json").read_text())


def test_the_readme_table_is_what_the_committed_report_renders():
    block = load_tool("compress_seeds").seeds_block(committed_report())
    assert block in (REPO / "README.md").read_text(encoding="utf-8")


def test_the_pipelines_seed_repeats_the_pipelines_scores_of_the_same_trained_model():
    """Fails when the tool stops doing what the compress, quantize, evaluate and compare stages do,
    or when the model changes and the report is not run again."""
    tool = load_tool("compress_seeds")
    report = committed_report()
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    trained = next(out["md5"] for out in lock["stages"]["train"]["outs"] if out["path"] == "models/model.pt")
    assert report["model_md5"] == trained
    seed = yaml.safe_load((REPO / "params.yaml").read_text())["compress"]["seed"]
    compare = json.loads((REPO / "metrics" / "compare.json").read_text())
    own = report["seeds"][str(seed)]
    for variant in (tool.CONTROL, *tool.COMPRESSED):
        for split in tool.SPLITS:
            assert own[variant][split]["cer"] == compare[variant][split]["cer"]
            if variant != tool.CONTROL:
                assert own[variant][split]["vs_control"] == compare[variant][split][f"vs_{tool.CONTROL}"]


def test_mean_gaps_average_each_model_and_split_over_the_seeds():
    tool = load_tool("compress_seeds")

    def gap(value: float) -> dict:
        return {"vs_control": {"relative_difference": value}}

    seeds = {
        seed: {variant: {"dev": gap(low), "test": gap(high)} for variant in tool.COMPRESSED}
        for seed, (low, high) in {"0": (0.01, 0.02), "1": (0.03, 0.05)}.items()
    }
    means = tool.mean_gaps(seeds)
    assert means["pruned_fp32"] == {"dev": 0.02, "test": 0.035} == means["pruned_int8"]
