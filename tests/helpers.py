"""Shared test helpers (importable thanks to ``pythonpath = ["tests"]`` in pyproject)."""

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_project(destination: Path) -> Path:
    """The files a DVC run needs, copied into a fresh folder."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, destination / name)
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return destination
