"""What ``dvc.lock`` says a pipeline run made, so that a tool's report can name the run it was measured on.

A report made outside the pipeline (``tools/``) is only evidence about the run whose model it
read: it records that model's md5 the way ``dvc.lock`` does, and a test or a later tool compares
the two instead of trusting a file name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml


def file_md5(path: Path) -> str:
    """A file's md5 as ``dvc.lock`` records an output's."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def locked_outputs(lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """Every stage output's path and md5 as ``lock`` records them; empty where there is no lock yet."""
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", []) if "md5" in out}
