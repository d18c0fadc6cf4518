"""A tool's report names the run it measured by the md5s ``dvc.lock`` records; these read them as DVC wrote them."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO
from speechquant.lock import file_md5, locked_outputs


def test_every_output_of_every_stage_is_read_with_its_md5(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\n"
        "stages:\n"
        "  train:\n"
        "    cmd: python stages/train.py\n"
        "    outs:\n"
        "    - path: models/model.pt\n"
        "      hash: md5\n"
        "      md5: 647ab57e0000000000000000000000aa\n"
        "      size: 21\n"
        "  features:\n"
        "    cmd: python stages/features.py\n"
        "    deps:\n"
        "    - path: data/corpus\n"
        "      md5: 1111.dir\n"
        "    outs:\n"
        "    - path: data/features\n"
        "      md5: 2222.dir\n"
        "  compare:\n"
        "    cmd: python stages/compare.py\n"
    )
    assert locked_outputs(lock) == {
        "models/model.pt": "647ab57e0000000000000000000000aa",
        "data/features": "2222.dir",
    }


def test_no_lock_yet_means_no_outputs(tmp_path: Path) -> None:
    assert locked_outputs(tmp_path / "dvc.lock") == {}


def test_the_committed_metrics_are_the_ones_dvc_lock_records() -> None:
    # Git-tracked outputs (cache: false) must match the lock, or a tool would credit a stale run.
    outputs = locked_outputs(REPO / "dvc.lock")
    for path in ("metrics/compare.json", "metrics/compress.json", "metrics/summary.json"):
        assert outputs[path] == file_md5(REPO / path), path
