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
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from saclab.core.agent import METRIC_NAMES
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.runs.schema import config_from_json

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
    interrupted swap's ``.old``), or None if there is none (a run that starts fresh).

    A checkpoint directory that is there but not whole and readable (and no ``.old`` to fall
    back on) is an error, never "no checkpoint": a resume must not start the run afresh over it."""
    path = Path(path)
    candidates = (path, path / "checkpoint", path.with_name(path.name + ".old"), path / "checkpoint.old")
    for candidate in candidates:
        if all(_readable(candidate / name) for name in (META_FILE, STATE_FILE)):
            return candidate
    for candidate in candidates:
        present = [name for name in (META_FILE, STATE_FILE) if os.path.lexists(candidate / name)]
        if present or (candidate != path and candidate.name == "checkpoint" and os.path.lexists(candidate)):
            unusable = [name for name in (META_FILE, STATE_FILE) if not _readable(candidate / name)]
            raise SaclabError(f"corrupt checkpoint {candidate}: {' and '.join(unusable)} missing or unreadable")
    return None


def _readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


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
    """The checkpoint's ``meta.json``: a JSON object whose ``config`` is a valid ``SACConfig``
    (what loading a policy needs; ``check_resume_meta`` checks what resuming needs)."""
    try:
        meta = json.loads((checkpoint / META_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SaclabError(f"corrupt checkpoint {checkpoint}: unreadable {META_FILE} ({e})".splitlines()[0]) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise SaclabError(f"corrupt checkpoint {checkpoint}: {META_FILE} holds no config")
    config_from_json(meta["config"], f"corrupt checkpoint {checkpoint}: {META_FILE}")
    return meta


RNG_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_rng_state(state: Any) -> bool:
    """A NumPy bit generator's state that can be set back (what the loops save)."""
    if not isinstance(state, dict) or state.get("bit_generator") not in RNG_BIT_GENERATORS:
        return False
    try:
        getattr(np.random, state["bit_generator"])().state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        return False
    return True


def check_resume_meta(meta: dict, kind: str, checkpoint: Path) -> None:
    """Refuse a ``meta.json`` that a ``kind`` run cannot resume from (a field missing, of the wrong
    type or out of range), with one line, before any field is used."""
    problems: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    need(_is_int(meta.get("seed")), "seed (a non-negative integer)")
    counters = meta.get("counters")
    need(isinstance(counters, dict), "counters")
    counters = counters if isinstance(counters, dict) else {}
    need(_is_number(counters.get("wall_time")) and counters.get("wall_time", -1) >= 0, "counters.wall_time")
    if kind == "compiled":  # the compiled loop (runs.compiled): its loop state is in loop.safetensors
        for name in ("step", "episode", "evaluations", "evaluated_blocks", "last_checkpoint_step"):
            need(_is_int(counters.get(name)), f"counters.{name}")
        need(isinstance(meta.get("train_returns"), list) and all(_is_number(v) for v in meta["train_returns"]),
             "train_returns")
        need(_is_int(meta.get("chunk_steps")), "chunk_steps")
    elif kind == "online":
        for name in ("step", "episode", "evaluations", "last_checkpoint_step"):
            need(_is_int(counters.get(name)), f"counters.{name}")
        need(_is_rng_state(meta.get("replay_rng")), "replay_rng")
        need(meta.get("env_rng") is None or _is_rng_state(meta.get("env_rng")), "env_rng")
        need(meta.get("pending_action") is None or _is_int(meta.get("pending_action")), "pending_action")
        accumulated = meta.get("accumulated")
        metrics = accumulated.get("metrics") if isinstance(accumulated, dict) else None
        need(isinstance(metrics, dict) and isinstance(metrics.get("sums"), list)
             and len(metrics["sums"]) == len(METRIC_NAMES) and all(_is_number(v) for v in metrics["sums"])
             and _is_int(metrics.get("count")), f"accumulated.metrics ({len(METRIC_NAMES)} sums and a count)")
        returns = accumulated.get("train_returns") if isinstance(accumulated, dict) else None
        need(isinstance(returns, list) and all(_is_number(v) for v in returns), "accumulated.train_returns")
        need(_buffer_meta_ok(checkpoint / BUFFER_FILE), f"{BUFFER_FILE} (readable, with its layout)")
    else:
        for name in ("epoch", "updates"):
            need(_is_int(counters.get(name)), f"counters.{name}")
        need(_is_rng_state(meta.get("rng")), "rng")
        dataset = meta.get("dataset")
        need(isinstance(dataset, dict) and isinstance(dataset.get("sha256"), str), "dataset.sha256")
    if problems:
        raise SaclabError(f"corrupt checkpoint {checkpoint}: {META_FILE} lacks a valid {', '.join(problems[:3])}"
                          f"{' ...' if len(problems) > 3 else ''}")


def _buffer_meta_ok(path: Path) -> bool:
    """The replay buffer file opens and names its layout (its arrays are checked when loaded)."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            layout = json.loads((f.metadata() or {})["saclab_buffer"])
    except Exception:  # noqa: BLE001 - any failure to open or parse means an unusable file
        return False
    return isinstance(layout, dict) and all(_is_int(layout.get(k)) for k in ("capacity", "head", "size", "obs_dim")) \
        and layout["size"] <= layout["capacity"] and layout["head"] < max(layout["capacity"], 1) \
        and _is_number(layout.get("max_priority"))


def load_state(checkpoint: Path, template: Any) -> Any:
    """The state pytree saved in ``checkpoint``, shaped like ``template``."""
    try:
        with safe_open(str(checkpoint / STATE_FILE), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise SaclabError(f"corrupt checkpoint {checkpoint}: {e}") from None
    return arrays_to_pytree(arrays, template, source=f"checkpoint {checkpoint}")
