"""Every DVC stage declares the library code it runs, so a change there re-runs it."""

import ast
from pathlib import Path

import yaml

from helpers import REPO

PACKAGE = REPO / "src" / "speechquant"


def module_path(name: str) -> Path | None:
    """The file of a ``speechquant`` module (a package's ``__init__.py``), or None."""
    if name != "speechquant" and not name.startswith("speechquant."):
        return None
    relative = Path(*name.split(".")[1:])
    if (PACKAGE / relative).is_dir():
        return PACKAGE / relative / "__init__.py"
    file = PACKAGE / relative.with_suffix(".py")
    return file if file.exists() else None


def imported_modules(path: Path) -> set[str]:
    """Every ``speechquant`` module a file imports, at the top or inside a function."""
    names: set[str] = set()
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]) if PACKAGE in path.parents else ""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if module_path(name) is not None}


def closure(script: Path) -> set[Path]:
    """The files of every ``speechquant`` module a stage script reaches, transitively."""
    seen: set[Path] = set()
    pending = [script]
    while pending:
        for name in imported_modules(pending.pop()):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                file = module_path(".".join(parts[:depth]))
                if file is not None and file not in seen:
                    seen.add(file)
                    pending.append(file)
    return seen


def declared(dependency: str, file: Path) -> bool:
    path = REPO / dependency
    return file == path or path in file.parents


def test_every_stage_declares_every_module_its_script_reaches():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        script = REPO / stage["cmd"].split()[1]
        deps = [dep for dep in stage["deps"] if isinstance(dep, str)]
        undeclared = [
            str(file.relative_to(REPO))
            for file in sorted(closure(script) - {PACKAGE / "__init__.py"})  # the version string only
            if not any(declared(dep, file) for dep in deps)
        ]
        if undeclared:
            missing[name] = undeclared
    assert missing == {}


def test_the_closure_follows_imports_inside_functions(tmp_path):
    """The check itself can fail: a module imported lazily is still found."""
    reached = {file.name for file in closure(REPO / "stages" / "features.py")}
    assert {"features.py", "audio.py", "store.py", "fileio.py"} <= reached
    assert "train.py" not in reached


def test_weight_bits_reruns_exactly_the_stages_that_make_signed_int8_weights():
    """`dvc exp run -S quant.weight_bits=8` must remake every int8 file with signed weights (and the sensitivity
    search, which quantizes), and leave the float variants and the compress stage's fine-tunes alone."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declaring = {name for name, stage in stages.items() if "quant.weight_bits" in stage.get("params", [])}
    assert declaring == {"sensitivity", "quantize", "quantize_auto", "quantize_qat", "quantize_pruned"}
    assert not any("quant" in stage.get("params", []) for stage in stages.values())  # not read through the section
