"""tools/int8_conv_vs_gemm.py: the README's table is its committed report's, of the layers the
tool times: the default compressed model's, with the stage's ranks."""

import json

import yaml

from helpers import REPO, load_tool
from speechquant.compress import DEFAULT_RANKS


def test_the_readme_table_is_what_the_committed_report_renders_for_the_default_layers():
    tool = load_tool("int8_conv_vs_gemm")
    report = json.loads((REPO / "reports" / "int8_conv_vs_gemm.json").read_text())
    assert tool.table(report) in (REPO / "README.md").read_text(encoding="utf-8")
    assert list(report["layers"]) == list(tool.default_layers())
    assert yaml.safe_load((REPO / "params.yaml").read_text())["compress"]["ranks"] == DEFAULT_RANKS
