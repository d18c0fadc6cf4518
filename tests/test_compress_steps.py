"""tools/compress_steps.py and its H100 report: the README quotes what the report holds."""

import json

from helpers import REPO, load_tool

MINUS = "\N{MINUS SIGN}"  # as the README writes negative gaps


def test_a_run_names_its_steps_and_an_optional_seed():
    tool = load_tool("compress_steps")
    assert tool.parse_run("1600s1") == (1600, 1)
    assert tool.parse_run("400") == (400, 0)


def test_the_readme_quotes_every_test_gap_of_the_committed_step_report():
    """Fails when the report is measured again and the README's reasons for the steps are not."""
    report = json.loads((REPO / "reports" / "compress_steps_h100.json").read_text())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Why 1,600 steps.**") :][:1500]
    for run in report["runs"]:
        gap = run["gap_test"] * 100
        sign = "+" if gap >= 0 else MINUS
        quoted = f"{sign}{abs(gap):.1f} %"
        assert quoted in section, (run["steps"], run["seed"], quoted)
