"""tools/compress_sweep.py: the README's table of compression candidates is its committed report's."""

import json
from types import ModuleType

from helpers import REPO, load_tool


def sweep_tool() -> ModuleType:
    return load_tool("compress_sweep")


def test_the_readme_table_is_what_the_committed_sweep_report_renders():
    tool = sweep_tool()
    report = json.loads((REPO / "reports" / "compress_sweep.json").read_text())
    block = tool.sweep_block(report)
    assert block in (REPO / "README.md").read_text(encoding="utf-8")
    assert f"| {tool.STAGE} | none: the stage's params |" in block
    assert f"| {tool.CONTROL} | none: uncompressed |" in block


def test_each_gap_is_relative_to_the_control_and_the_block_replaces_only_its_own_text():
    tool = sweep_tool()
    rows = {"control": {"dev_cer_after": 0.2}, "smaller": {"dev_cer_after": 0.21}}
    tool.gaps(rows, "control")
    assert rows["smaller"]["dev_cer_gap_to_control"] == 0.05 and "dev_cer_gap_to_control" not in rows["control"]
    readme = f"intro\n{tool.SWEEP_BEGIN}\nold\n{tool.SWEEP_END}\nafter\n"
    new = f"{tool.SWEEP_BEGIN}\nnew\n{tool.SWEEP_END}"
    assert tool.readme_with(readme, new) == f"intro\n{new}\nafter\n"
