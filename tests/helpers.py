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


def write_feature_store(path: Path, utterances: int, seed: int) -> None:
    """A small log-mel store of random frames with short transcripts, for training tests."""
    import numpy as np

    from speechquant.store import StoreWriter, Utterance

    rng = np.random.default_rng(seed)
    words = ["a cab", "bad", "dab a cab", "add", "be a bee"]
    with StoreWriter(path, np.float16, (40,), {"kind": "log_mel", "hop_ms": 10.0}) as writer:
        for index in range(utterances):
            text = words[index % len(words)]
            frames = int(rng.integers(60, 120))
            features = rng.standard_normal((frames, 40)) + np.arange(40) / 10 * (1 + index % len(words))
            writer.append(Utterance(f"u{index:03d}", text, 0), features.astype(np.float16))
