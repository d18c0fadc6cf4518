"""Reading ``params.yaml`` into typed options, with clear errors for unknown or bad keys.

Every value is checked once, where it is read, against its option's type hint and the
limits in its field's metadata (``limits``), so a typo such as ``epochs: ten`` or
``hidden_channels: -5`` is one ``error:`` line naming the key, the value and what is
allowed, before any work starts, rather than a traceback or a silently empty output an
hour later.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Collection
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


def check_ordered(prefix: str, ranges: dict[str, tuple[float, float]]) -> None:
    """Refuse an inclusive ``[low, high]`` param whose low is above its high, naming its key."""
    for name, (low, high) in ranges.items():
        if low > high:
            raise ValueError(f"{prefix}.{name}: low {low} is above high {high}")


def limits(
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    choices: Collection[str] | None = None,
) -> dict[str, Any]:
    """Field metadata bounding a number (``low <= x <= high``, ``x > above``) or naming the allowed strings.

    On a list or a mapping the limits apply to each element or value.
    """
    return {"limits": {"low": low, "high": high, "above": above, "choices": tuple(choices) if choices else None}}


def build(cls: type[Options], values: Any, prefix: str) -> Options:
    """Make a dataclass from a params mapping, checking every value's type and limits.

    Lists become tuples so options stay hashable; a nested dataclass is built from its
    own mapping. Cross-field rules stay in each class's ``__post_init__`` (a ValueError
    there becomes the same one-line error).
    """
    if not isinstance(values, dict):
        raise UserError(f"params.yaml: {prefix} must be a mapping of keys, not {values!r}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    missing = sorted(name for name, field in fields.items() if name not in values and _required(field))
    if unknown:
        raise UserError(f"unknown params {', '.join(f'{prefix}.{k}' for k in unknown)}; valid: {sorted(fields)}")
    if missing:
        raise UserError(f"missing params {', '.join(f'{prefix}.{k}' for k in missing)}")
    hints = typing.get_type_hints(cls)
    converted = {}
    for name, value in values.items():
        key = f"{prefix}.{name}"
        converted[name] = _convert(hints[name], value, key)
        _check_limits(fields[name].metadata.get("limits"), converted[name], key)
    try:
        return cls(**converted)
    except (TypeError, ValueError) as error:
        message = str(error)
        if not message.startswith(f"{prefix}."):  # a rule that already names its full key is not prefixed twice
            message = f"{prefix}: {message}"
        raise UserError(f"params.yaml: {message}") from None


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _convert(hint: Any, value: Any, key: str) -> Any:
    """``value`` as the type ``hint`` names, or a UserError saying what was expected."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:  # a subsection its owner checks
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        (inner,) = [argument for argument in arguments if argument is not type(None)]
        return _convert(inner, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"params.yaml: {key} is {value!r}; it must be true or false")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise UserError(f"params.yaml: {key} is {value!r}; it must be a whole number")
        return value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise UserError(f"params.yaml: {key} is {value!r}; it must be a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"params.yaml: {key} is {value!r}; it must be a string")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise UserError(f"params.yaml: {key} is {value!r}; it must be a list")
        if origin is tuple and arguments[-1] is not Ellipsis and len(value) != len(arguments):
            raise UserError(f"params.yaml: {key} is {value!r}; it must list {len(arguments)} values [low, high]")
        items = [
            _convert(arguments[0] if origin is list or arguments[-1] is Ellipsis else arguments[i], item, f"{key}[{i}]")
            for i, item in enumerate(value)
        ]
        if (origin is list or arguments[-1] is Ellipsis) and len(set(items)) < len(items):
            repeated = sorted({str(item) for item in items if items.count(item) > 1})
            raise UserError(f"params.yaml: {key} lists {', '.join(repeated)} more than once")
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
            raise UserError(f"params.yaml: {key} is {value!r}; it must be a mapping of names to values")
        return {name: _convert(arguments[1], item, f"{key}.{name}") for name, item in value.items()}
    raise TypeError(f"params cannot check {key} of type {hint}")


def _check_limits(bounds: dict[str, Any] | None, value: Any, key: str) -> None:
    problem = _limit_problem(bounds, value, key)
    if problem:
        raise UserError(f"params.yaml: {problem}")


def _limit_problem(bounds: dict[str, Any] | None, value: Any, key: str) -> str | None:
    """What is wrong with ``value`` under ``bounds`` (each element of a list or mapping), or None."""
    if bounds is None or value is None:
        return None
    if isinstance(value, dict):
        problems = (_limit_problem(bounds, item, f"{key}.{name}") for name, item in value.items())
        return next((problem for problem in problems if problem), None)
    if isinstance(value, tuple | list):
        problems = (_limit_problem(bounds, item, f"{key}[{index}]") for index, item in enumerate(value))
        return next((problem for problem in problems if problem), None)
    low, high, above, choices = bounds["low"], bounds["high"], bounds["above"], bounds["choices"]
    if choices is not None:
        return None if value in choices else f"{key} is {value!r}; it must be one of {', '.join(choices)}"
    if (
        (low is not None and value < low)
        or (high is not None and value > high)
        or (above is not None and value <= above)
    ):
        allowed = [f"> {above:g}"] if above is not None else []
        allowed += [f">= {low:g}"] if low is not None else []
        allowed += [f"<= {high:g}"] if high is not None else []
        return f"{key} is {value!r}; it must be {' and '.join(allowed)}"
    return None


class Checked:
    """Base of the options dataclasses: each field's ``limits`` hold however the options were made.

    ``build`` checks them first with the full params key; this catches options made in
    code (tests, other modules). A subclass with its own ``__post_init__`` calls this one.
    """

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            problem = _limit_problem(field.metadata.get("limits"), getattr(self, field.name), field.name)
            if problem:
                raise ValueError(problem)


def matrix_item(given: str | None, *stages: str) -> str:
    """The item of a ``<stage>@<item>`` stage (one of ``stages``): the command line's, or DVC's ``DVC_STAGE``.

    dvc.yaml passes no params value through the shell: a variant named
    ``static_int8; touch X`` in params.yaml would otherwise be run as a command. DVC sets
    ``DVC_STAGE`` to the stage being run, so the script reads its item from there.
    """
    if given:
        return given
    running = os.environ.get("DVC_STAGE", "")
    head, separator, item = running.partition("@")
    if head.rpartition(":")[2] not in stages or not separator or not item:
        raise UserError(f"name what to run, or run it as `dvc repro {stages[0]}` (DVC then names it)")
    return item


def require_listed(value: str, listed: Collection[str], key: str) -> str:
    """``value`` if ``key`` in params.yaml lists it; otherwise an error naming what it lists."""
    if value not in listed:
        raise UserError(f"{value!r} is not in params.yaml {key} ({', '.join(map(str, listed))})")
    return value
