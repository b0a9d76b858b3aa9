"""Checkpoints: safetensors for arrays, JSON for the rest; never pickle.

A checkpoint is a directory::

    checkpoint/
      state.safetensors   the SACState pytree (params, targets, optimisers, log_alpha)
      buffer.safetensors  the replay buffer (online runs only)
      meta.json           config, environment, counters and RNG states

It is written as ``checkpoint.new`` and swapped in with renames, so a crash
leaves either the old or the new checkpoint whole, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from saclab.errors import SaclabError
from saclab.files import write_json

STATE_FILE = "state.safetensors"
BUFFER_FILE = "buffer.safetensors"
META_FILE = "meta.json"


def _leaf_names(tree: Any) -> list[str]:
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def pytree_to_arrays(tree: Any) -> dict[str, np.ndarray]:
    """Flatten a pytree to {path: array} (path strings such as ``.actor_params['Dense_0']['kernel']``)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return {name: np.asarray(leaf) for name, leaf in zip(_leaf_names(tree), leaves, strict=True)}


def arrays_to_pytree(arrays: dict[str, np.ndarray], template: Any, source: str = "checkpoint") -> Any:
    """Rebuild ``template``'s structure from ``arrays``, checking names, shapes and dtypes."""
    names = _leaf_names(template)
    leaves = jax.tree_util.tree_leaves(template)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise SaclabError(f"{source} does not match this configuration: missing {missing[0]}")
    restored = []
    for name, leaf in zip(names, leaves, strict=True):
        value = arrays[name]
        if value.shape != np.shape(leaf):
            raise SaclabError(
                f"{source} does not match this configuration: {name} has shape {value.shape}, "
                f"expected {np.shape(leaf)}"
            )
        restored.append(np.asarray(value, dtype=np.asarray(leaf).dtype))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), restored)


def save_checkpoint(
    directory: str | os.PathLike,
    state: Any,
    meta: dict,
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint directory atomically; ``write_extra(tmpdir)`` may add files (the buffer)."""
    final = Path(directory)
    new = final.with_name(final.name + ".new")
    old = final.with_name(final.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_file(pytree_to_arrays(state), str(new / STATE_FILE))
    if write_extra is not None:
        write_extra(new)
    write_json(new / META_FILE, meta)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(path: str | os.PathLike) -> Path | None:
    """The checkpoint directory for a run dir or a checkpoint dir (falling back to an
    interrupted swap's ``.old``), or None if there is none (a run that starts fresh)."""
    path = Path(path)
    for candidate in (path, path / "checkpoint", path.with_name(path.name + ".old"),
                      path / "checkpoint.old"):
        if (candidate / META_FILE).is_file() and (candidate / STATE_FILE).is_file():
            return candidate
    return None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Like ``find_checkpoint``, but a missing checkpoint is an error."""
    path = Path(path)
    found = find_checkpoint(path)
    if found is not None:
        return found
    if not path.exists():
        raise SaclabError(f"checkpoint not found: {path}")
    raise SaclabError(f"no checkpoint in {path} (expected {META_FILE} and {STATE_FILE})")


def load_meta(checkpoint: Path) -> dict:
    try:
        return json.loads((checkpoint / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SaclabError(f"corrupt checkpoint {checkpoint}: unreadable {META_FILE} ({e})") from None


def load_state(checkpoint: Path, template: Any) -> Any:
    """The state pytree saved in ``checkpoint``, shaped like ``template``."""
    try:
        with safe_open(str(checkpoint / STATE_FILE), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise SaclabError(f"corrupt checkpoint {checkpoint}: {e}") from None
    return arrays_to_pytree(arrays, template, source=f"checkpoint {checkpoint}")
