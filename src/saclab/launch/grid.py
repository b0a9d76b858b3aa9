"""Grids of configurations: ``field=value`` labels, typed values, and the jobs of a grid times seeds."""

from __future__ import annotations

import itertools
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saclab.config import SACConfig
from saclab.errors import SaclabError
from saclab.launch.jobs import Job


def combinations(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid`` (field -> values) as field -> value, the last field fastest."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def grid_configs(base: SACConfig, grid: Mapping[str, Sequence[Any]]) -> list[tuple[str, SACConfig, dict[str, Any]]]:
    """(label, config, changes) of each combination, in run order; an invalid combination is a
    one-line error naming it."""
    out = []
    for changes in combinations(grid):
        try:
            out.append((grid_label(changes), base.replace(**changes), changes))
        except SaclabError as e:
            raise SaclabError(f"{grid_label(changes)}: {e}") from None
    return out


def grid_jobs(kind: str, base: SACConfig, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int],
              out: str | Path, dataset: str | None = None) -> list[Job]:
    """The Cartesian product of ``grid`` (field -> values) times ``seeds``.

    Run directories are ``out/<label>/seed-N`` with ``label`` from ``grid_label``;
    jobs come configuration by configuration, seeds innermost.
    """
    return [Job(kind, config, s, str(Path(out) / label / f"seed-{s}"), dataset, tags=changes)
            for label, config, changes in grid_configs(base, grid) for s in seeds]


def grid_label(changes: Mapping[str, Any]) -> str:
    """A configuration's directory name: ``field=value,...`` in grid order (``base`` if empty)."""
    return ",".join(f"{n}={_fmt(v)}" for n, v in changes.items()) or "base"


def grid_labels(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """The labels of all configurations of ``grid``, in run order."""
    return [grid_label(changes) for changes in combinations(grid)]


def _fmt(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------
# Grid values: typed by the SACConfig field they set
# ---------------------------------------------------------------------------------------
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(SACConfig)


def config_field(name: str) -> str:
    """The SACConfig field called ``name`` (dashes accepted for underscores), or a one-line error."""
    key = name.strip().replace("-", "_")
    if key not in _field_types():
        raise SaclabError(f"unknown config field {name!r} (see `saclab train --help` for the fields)")
    return key


def parse_value(name: str, text: str) -> Any:
    """Parse ``text`` as a value of SACConfig field ``name`` (float, int, bool, str;
    hidden_sizes as ``128x128``)."""
    kind = _field_types()[name]
    text = text.strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            if not text:
                raise ValueError(text)
            return text
        if typing.get_origin(kind) is tuple:
            return tuple(int(w) for w in text.lower().split("x"))
    except ValueError:
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a non-empty string"}
        raise SaclabError(f"bad value {text!r} for {name}: expected "
                          f"{expected.get(kind, 'widths like 128x128')}") from None
    raise SaclabError(f"field {name} cannot be swept")  # pragma: no cover - every field has a type above


def coerce_value(name: str, value: Any) -> Any:
    """``value`` as the type of field ``name`` (strings are parsed; 1 -> 1.0 for float fields)."""
    kind = _field_types()[name]
    if isinstance(value, str) and kind is not str:
        return parse_value(name, value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if typing.get_origin(kind) is tuple and isinstance(value, (tuple, list)):
        try:
            return tuple(int(w) for w in value)
        except (TypeError, ValueError):
            pass
    raise SaclabError(f"bad value {value!r} for {name} (a {getattr(kind, '__name__', kind)})")


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["cql_weight=0,0.5,1", "hidden_sizes=64x64,128x128"]`` -> ``{field: [values]}``, typed."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not values.strip():
            raise SaclabError(f"--set expects FIELD=V1,V2,..., got {spec!r}")
        key = config_field(name)
        if key in grid:
            raise SaclabError(f"--set {key} given twice")
        grid[key] = [parse_value(key, v) for v in values.split(",")]
    return normalize_grid(grid)


def normalize_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Check field names and value types, refuse empty or repeated values; a typed copy."""
    out: dict[str, list[Any]] = {}
    for name, values in grid.items():
        key = config_field(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise SaclabError(f"grid values of {key} must be a list, got {values!r}")
        typed = [coerce_value(key, v) for v in values]
        if not typed:
            raise SaclabError(f"grid field {key} has no values")
        labels = [_fmt(v) for v in typed]
        repeated = sorted({v for v in labels if labels.count(v) > 1})
        if repeated:
            raise SaclabError(f"grid field {key} repeats value(s) {', '.join(repeated)}")
        if key in out:
            raise SaclabError(f"grid field {key} given twice")
        out[key] = typed
    return out


__all__ = ["combinations", "grid_configs", "grid_jobs", "grid_label", "grid_labels", "config_field", "parse_value",
           "coerce_value", "parse_grid", "normalize_grid"]
