"""tools/compress_recipe.py: the README's recipe tables are its committed report's, and every gap
there is what the report's own per-utterance edits give."""

import json
from types import ModuleType

import numpy as np
import yaml

from helpers import REPO, load_tool
from speechquant.compare import Scored, paired_bootstrap
from speechquant.lock import locked_outputs


def recipe_tool() -> ModuleType:
    return load_tool("compress_recipe")


def committed_report() -> dict:
    return json.loads((REPO / "reports" / "compress_recipe.json").read_text())


def test_the_readme_tables_are_what_the_committed_report_renders():
    block = recipe_tool().recipe_block(committed_report())
    assert block in (REPO / "README.md").read_text(encoding="utf-8")


def test_every_gap_is_the_bootstrap_of_the_stored_edits_against_the_stage_recipe_control():
    tool = recipe_tool()
    for loop in committed_report()["loops"].values():
        characters = np.array(loop["dev_characters"], dtype=np.int64)

        def scored(row: dict, characters: np.ndarray = characters) -> Scored:
            edits = np.array(row["dev_edits"], dtype=np.int64)
            return Scored([str(i) for i in range(len(edits))], [], [], edits, characters)

        reference = loop["models"][tool.REFERENCE]
        assert reference["vs_control"] is None and reference["kind"] == "control"
        for row in loop["models"].values():
            assert row["dev_cer"] == round(scored(row).cer(), 5)
            if row["vs_control"] is not None:
                assert row["vs_control"] == paired_bootstrap(scored(row), scored(reference), 1000, 0)


def test_the_report_was_made_from_the_model_of_the_xeon_run_it_is_quoted_beside():
    trained = locked_outputs(REPO / "reports" / "pipeline_xeon_amx" / "dvc.lock")["models/model.pt"]
    for loop in committed_report()["loops"].values():
        assert loop["model_md5"] == trained
        assert loop["machine"]["cpu_id"] == "family 6 model 167 stepping 1"


def test_the_stages_recipe_is_one_the_report_measured_for_both_models():
    """params.yaml's rate and distillation weight were chosen by these loops: a change to either
    that no loop measured for the control and the compressed model alike fails here."""
    stage = yaml.safe_load((REPO / "params.yaml").read_text())["compress"]
    recipe = (stage["learning_rate"], stage["distill_weight"])
    measured = {
        (row["kind"], row["learning_rate"], row["distill_weight"])
        for loop in committed_report()["loops"].values()
        for row in loop["models"].values()
        if row.get("ranks") is None
    }
    assert {("control", *recipe), ("compressed", *recipe)} <= measured
