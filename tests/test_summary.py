"""The written results quote the metrics files, never a number typed by hand."""

import yaml

from helpers import REPO
from speechquant.report.markdown import (
    README_BEGIN,
    README_END,
    Results,
    decoder_words,
    domain_shift_table,
    readme_block,
    readme_results,
    replace_readme_block,
    runtime_table,
    shipping_advice,
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


def test_the_shipping_advice_is_the_fastest_row_not_measurably_worse_than_fp32():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    results = Results.load(REPO, params)
    fastest = shipping_advice(results)[1]  # "- fastest: `static_int8` in ONNX Runtime, 13.5 ms (4.31x ...)"
    milliseconds = float(fastest.split(", ")[1].split(" ms")[0])

    def not_worse(variant: str) -> bool:
        versus = results.compare[variant]["dev"].get("vs_fp32")
        return versus is None or not (versus["measurable"] and versus["cer_difference"] > 0)

    eligible = [v for v in results.variants if not_worse(v)]
    rows = results.benchmark["runtimes"]["openvino"]["rows"]
    latencies = [results.timing(v)["latency_ms_p50"] for v in eligible if results.timing(v)]
    latencies += [rows[v]["latency"]["batch1_10s_1thread"]["latency_ms_p50"] for v in eligible if v in rows]
    assert fastest.split("`")[1] in eligible and milliseconds == round(min(latencies), 1)


def test_the_domain_shift_table_sets_each_variants_change_in_and_out_of_domain_side_by_side():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    results = Results.load(REPO, params)
    table = domain_shift_table(results)
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ") for line in table if line.startswith("| ")}
    assert rows["variant"][1:] == [
        "dev CER",
        "change vs fp32",
        "dev_unseen_text CER",
        "change vs fp32",
        "dev_unseen_voice CER",
        "change vs fp32 |",
    ]
    for split_index, split in ((1, "dev"), (3, "dev_unseen_text"), (5, "dev_unseen_voice")):
        assert float(rows["static_int8"][split_index]) == round(results.evaluation["static_int8"][split]["cer"], 4)
        assert rows["static_int8"][split_index + 1].rstrip(" |").endswith(("worse", "better", "no measurable change"))
    assert rows["fp32"][2] == "reference"


def test_without_out_of_domain_utterances_the_table_says_so_instead_of_dividing_by_nothing():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    results = Results.load(REPO, params)
    results.evaluation[results.reference]["dev_unseen_text"] = {"scored": 0, "cer": None}
    assert "no out-of-domain utterances" in domain_shift_table(results)[0]
