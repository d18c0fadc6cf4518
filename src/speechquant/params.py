"""Reading ``params.yaml`` into typed options, with clear errors for unknown or bad keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from speechquant.errors import UserError

PARAMS_FILE = "params.yaml"
Options = TypeVar("Options")


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole params file as a dict."""
    try:
        with open(path, encoding="utf-8") as file:
            params = yaml.safe_load(file)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run from the repository root") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(params, dict):
        raise UserError(f"{path} must hold a mapping of sections")
    return params


def section(params: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The mapping at ``dotted`` (``data.synth``), or a UserError naming what is missing."""
    node: Any = params
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise UserError(f"params.yaml has no {dotted!r} section")
        node = node[key]
    if not isinstance(node, dict):
        raise UserError(f"params.yaml: {dotted!r} must be a mapping")
    return node


def build(cls: type[Options], values: dict[str, Any], prefix: str) -> Options:
    """Make a dataclass from a params mapping; lists become tuples so options stay hashable."""
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    missing = sorted(name for name in fields - set(values) if _required(cls, name))
    if unknown:
        raise UserError(f"unknown params {', '.join(f'{prefix}.{k}' for k in unknown)}; valid: {sorted(fields)}")
    if missing:
        raise UserError(f"missing params {', '.join(f'{prefix}.{k}' for k in missing)}")
    converted = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
    try:
        return cls(**converted)
    except (TypeError, ValueError) as error:
        raise UserError(f"{prefix}: {error}") from None


def _required(cls: type, name: str) -> bool:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
