"""Shared test helpers (importable thanks to ``pythonpath = ["tests"]`` in pyproject)."""

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from speechquant.lock import locked_outputs

REPO = Path(__file__).resolve().parents[1]


def load_tool(name: str) -> ModuleType:
    """A script of tools/ as a module; tools/ goes on the path, as running the script puts it, for the
    helpers one tool takes from another."""
    if str(REPO / "tools") not in sys.path:
        sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trained_model_md5() -> str:
    """The trained model's md5 as ``dvc.lock`` records it: what a report made from it must name."""
    return locked_outputs(REPO / "dvc.lock")["models/model.pt"]


ZEN5_RUN = REPO / "reports" / "pipeline_zen5"
"""The committed run up to commit 11800d5 (a 2-core Zen 5 EPYC, ``compress.distill_weight: 0.5``): its
``dvc.lock`` and metrics. Reports measured on its files and not run again since name them, and the
README says so: ``compress_seeds_800.json``, ``compress_seeds_800_control_teacher.json``, ``op_profile.json``."""


def zen5_run_outputs() -> dict[str, str]:
    """The md5 of each output of the Zen 5 run, as its ``dvc.lock`` records it."""
    return locked_outputs(ZEN5_RUN / "dvc.lock")


EIGHT_BIT_RUN = REPO / "reports" / "pipeline_zen4_8bit"
"""The committed run up to commit df58586 (the 2-core Zen 4 EPYC, ``quant.weight_bits`` not yet a param:
8-bit signed int8 weights): its ``dvc.lock`` and metrics. Its trained, compressed and float models are
the current run's byte for byte; only the signed-int8 variants differ. The README's distillation-weight
table and the 8-bit vs 7-bit comparison (``reports/weight_bits_8_vs_7/``) are of it."""


PLATEAU_MODEL_MD5 = "c4b47ea4c4c10ec5ef36addbc4bebe6e"
"""The last model trained with ``train.schedule: plateau`` (dvc.lock up to commit 98cc224). The reports that
show why ``anneal`` became the default are of it, and the README says so: ``train_end_lr.json``,
``schedule_cpu.json`` (row ``trained``)."""


def signed(value: float) -> str:
    """A percentage as the README's prose tables print it: two decimals, a sign, and a true minus."""
    return f"{value:+.2f}".replace("-", "\u2212")


def readme_words() -> str:
    """README.md with every run of whitespace made one space, so that quoted prose may wrap anywhere."""
    return " ".join((REPO / "README.md").read_text(encoding="utf-8").split())


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
