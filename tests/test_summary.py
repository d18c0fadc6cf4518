"""The written results quote the metrics files, never a number typed by hand."""

import yaml

from helpers import REPO
from speechquant.report.markdown import (
    README_BEGIN,
    README_END,
    Results,
    decoder_words,
    readme_block,
    readme_results,
    replace_readme_block,
    runtime_table,
)


def test_the_readme_results_are_what_the_report_stage_writes_from_the_committed_metrics():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    expected = readme_block(Results.load(REPO, params))
    assert readme_results((REPO / "README.md").read_text(encoding="utf-8")) == expected


def test_the_block_is_replaced_between_its_markers_and_nothing_else_changes():
    readme = f"# title\n\nintro\n\n{README_BEGIN}\nold numbers\n{README_END}\n\n## After\n"
    block = f"{README_BEGIN}\nnew numbers\n{README_END}"
    updated = replace_readme_block(readme, block)
    assert updated == f"# title\n\nintro\n\n{block}\n\n## After\n"
    assert replace_readme_block(updated, block) == updated
    assert readme_results(updated) == block


def test_the_decoder_is_described_as_the_evaluation_ran_it():
    beam = {"method": "beam", "beam_size": 20, "lm": "none", "lm_weight": 0.6}
    assert decoder_words(beam) == "beam search (beam 20), no LM"
    assert decoder_words({**beam, "beam_size": 5, "lm": "char"}) == "beam search (beam 5), char n-gram LM (weight 0.6)"
    assert decoder_words({**beam, "method": "greedy"}) == "greedy (best path) decoding"


def test_the_report_sets_both_runtimes_side_by_side_with_the_precision_each_ran_in():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    results = Results.load(REPO, params)
    table = runtime_table(results)
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table if line.startswith("| ")}
    assert set(params["quant"]["variants"]) <= set(rows)
    assert rows["static_int8"].endswith("| 11 u8 |") and "f32" in rows["fp32"]
    assert rows["bf16"].endswith("| 11 bf16 |") or "skipped" in rows["bf16"]  # run in OpenVINO, or said why not
    assert rows["bf16"].startswith("| bf16 | - |")  # never in ONNX Runtime's column
