"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it in,
so a crash leaves the old file or the new one whole, never half of one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary path in ``path``'s directory, then rename it to ``path``.

    The temporary name keeps the suffix (``x.tmp.png``): matplotlib and h5py choose formats by it.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True))


__all__ = ["atomic_write", "write_text", "write_json"]
