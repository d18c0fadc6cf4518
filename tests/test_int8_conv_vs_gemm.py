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


def test_the_readme_shows_the_zen4_report_of_the_same_layers_and_its_sums():
    """The second table (the committed run's CPU) is rendered from its report, and the sums quoted
    beside it are that report's (conv1 counted seven times, as the model runs it)."""
    tool = load_tool("int8_conv_vs_gemm")
    report = json.loads((REPO / "reports" / "int8_conv_vs_gemm_zen4.json").read_text())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert tool.rows(report) in readme and list(report["layers"]) == list(tool.default_layers())

    def summed(field: str) -> float:
        return sum(row[field] * (7 if name.startswith("conv1 ") else 1) for name, row in report["layers"].items())

    quoted = f"the GEMMs take {summed('int8_gemm_ms'):.1f} ms against {summed('int8_conv_ms'):.1f} ms for the convs"
    assert quoted in " ".join(readme.split())
