"""Type checks of the configurations saclab reads back from its files (checkpoints, sweep and
study descriptions): every field of the type its default has, before ``SACConfig`` sees it."""

from __future__ import annotations

import dataclasses
from typing import Any

from saclab.config import SACConfig
from saclab.errors import SaclabError


def _fits(value: Any, kind: str) -> bool:
    """Whether a JSON value may stand for a field annotated ``kind`` (``SACConfig``'s annotations, as text)."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind.startswith("tuple[int"):
        return isinstance(value, (list, tuple)) and all(_fits(v, "int") for v in value)
    return False


def config_from_json(values: Any, source: str) -> SACConfig:
    """The ``SACConfig`` a file holds, or a one-line error naming ``source`` and the first bad field.

    Unknown fields are refused (a file from a newer saclab); missing ones take their defaults
    (a file from an older one)."""
    if not isinstance(values, dict):
        raise SaclabError(f"{source}: the config is not a JSON object")
    kinds = {f.name: str(f.type) for f in dataclasses.fields(SACConfig)}
    for name, value in values.items():
        if name not in kinds:
            raise SaclabError(f"{source}: unknown config field {str(name)[:40]!r}")
        if not _fits(value, kinds[name]):
            raise SaclabError(f"{source}: config field {name} has a value of the wrong type ({str(value)[:40]!r})")
    try:
        return SACConfig.from_dict(values)
    except SaclabError as e:
        raise SaclabError(f"{source}: {e}") from None
    except (TypeError, ValueError, OverflowError) as e:
        raise SaclabError(f"{source}: bad config ({e})".splitlines()[0]) from None


__all__ = ["config_from_json"]
