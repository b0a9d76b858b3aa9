"""A practitioner's own logs (a table of named columns, ``data.tables``) as a saclab ``Dataset``.

One row is one decision: the observation, the action taken, the reward that
followed, and whether the episode then ended (docs/own-logs.md)::

    obs_0 ... obs_{n-1}   (or one ``observation`` column of arrays: npz, Parquet)
    action                integer in [0, num_actions)
    reward                number
    terminated            0/1 or true/false: the MDP ended after this step (no bootstrap)
    truncated             0/1 or true/false: the episode was cut (a time limit, the log stopping)
    episode               optional episode id; rows of one episode are consecutive, in time order

``columns`` maps these names to the file's (``{"action": "act"}``; ``obs_`` maps
the prefix of the observation columns, ``obs_K`` one of them).  The next
observation is the next row of the same episode.  Without an ``episode``
column, an episode ends at a terminated or truncated row (or at the last row).

An episode's last row: if terminated, its next observation is never used (no
bootstrap) and is stored as the row's own observation.  Otherwise (truncated,
or neither flag: the log stops there) the state after its action is unknown,
so that row's observation becomes the previous transition's next observation,
the previous transition is marked truncated, and the row's action and reward
are dropped (counted in ``rows_dropped``; a one-row episode is dropped whole).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from saclab.data.dataset import Dataset
from saclab.data.tables import read_table, table_format
from saclab.errors import SaclabError

ROLES = ("action", "reward", "terminated", "truncated", "episode", "observation", "obs_")
"""The names ``columns`` may map (besides ``obs_K`` for one observation column)."""
_TRUE, _FALSE = {"1", "1.0", "true", "t", "yes"}, {"0", "0.0", "false", "f", "no"}


def parse_columns(text: str) -> dict[str, str]:
    """``"action=act,reward=r"`` -> ``{"action": "act", "reward": "r"}`` (the ``--columns`` flag)."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, name = (s.strip() for s in item.partition("="))
        if not sep or not role or not name:
            raise SaclabError(f"--columns: {item!r} is not ROLE=COLUMN (e.g. action=act,reward=r)")
        if role not in ROLES and not (role.startswith("obs_") and role[4:].isdigit()):
            raise SaclabError(f"--columns: unknown role {role!r} (roles: {', '.join(ROLES)}, obs_K)")
        if role in mapping:
            raise SaclabError(f"--columns: {role} is mapped twice")
        mapping[role] = name
    return mapping


def import_logs(path: str | os.PathLike, columns: dict[str, str] | None = None, num_actions: int = 0,
                reward_scale: float = 1.0) -> Dataset:
    """Read a CSV, npz or Parquet log file and return it as a checked ``Dataset``.

    Args:
        path: the log file (its suffix says the format: .csv, .npz, .parquet).
        columns: role -> the file's column name, for names other than the defaults.
        num_actions: size of the action space (0: the largest logged action + 1).
        reward_scale: stored in the metadata; offline training multiplies rewards by it.
    """
    path = Path(path)
    table = read_table(path)
    dataset = table_to_dataset(table, columns or {}, num_actions, reward_scale, source=str(path))
    dataset.metadata["source_format"] = table_format(path)
    return dataset


def table_to_dataset(table: dict[str, np.ndarray], columns: dict[str, str], num_actions: int = 0,
                     reward_scale: float = 1.0, source: str = "table") -> Dataset:
    """The transitions of a table of columns (see the module docstring for the rules)."""
    if not math.isfinite(reward_scale) or reward_scale <= 0:
        raise SaclabError(f"--reward-scale must be a finite number > 0, got {reward_scale}")
    if num_actions < 0:
        raise SaclabError(f"--num-actions must be >= 0, got {num_actions}")
    if not table:
        raise SaclabError(f"{source} has no columns")
    lengths = {name: len(values) for name, values in table.items()}
    rows = max(lengths.values())
    short = [name for name, n in lengths.items() if n != rows]
    if short:
        raise SaclabError(f"{source}: columns of different lengths ({short[0]} has {lengths[short[0]]} rows, "
                          f"others {rows})")
    if rows == 0:
        raise SaclabError(f"{source} has no rows")

    def column(role: str, required: bool = True) -> np.ndarray | None:
        name = columns.get(role, role)
        if name not in table:
            if required:
                mapped = f" (mapped from {role})" if role in columns else " (map yours with --columns)"
                raise SaclabError(f"{source}: missing column {name!r}{mapped}")
            return None
        return table[name]

    observations, obs_names = _observations(table, columns, source)
    actions = _numbers(column("action"), "action", source)
    bad = (actions != np.round(actions)) | (actions < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise SaclabError(f"{source}: column action, row {row + 1}: {actions[row]!r} is not an integer >= 0")
    actions = actions.astype(np.int64)
    largest = int(actions.max())
    if num_actions and largest >= num_actions:
        raise SaclabError(f"{source}: action {largest} (row {int(np.argmax(actions)) + 1}) is out of range for "
                          f"--num-actions {num_actions}")
    rewards = _numbers(column("reward"), "reward", source)
    terminated = _flags(column("terminated"), "terminated", source)
    truncated = _flags(column("truncated"), "truncated", source)
    episode = column("episode", required=False)
    last = _episode_ends(episode, terminated | truncated, source)
    transitions, dropped = _transitions(observations, actions, rewards, terminated, truncated, last)
    if len(transitions["actions"]) == 0:
        raise SaclabError(f"{source}: no transitions left: every episode is one row that is not terminated "
                          "(a next observation is needed to learn from it)")
    from saclab.version import __version__

    mapping = {"observation": obs_names, **{role: columns.get(role, role) for role in
                                             ("action", "reward", "terminated", "truncated")}}
    if episode is not None:
        mapping["episode"] = columns.get("episode", "episode")
    metadata: dict[str, Any] = {
        "source": source, "columns": mapping, "rows": rows, "rows_dropped": dropped,
        "num_actions": num_actions or largest + 1,
        "num_actions_from": "--num-actions" if num_actions else "largest action + 1",
        "reward_scale": float(reward_scale), "saclab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return Dataset(**transitions, metadata=metadata)


def _observations(table: dict[str, np.ndarray], columns: dict[str, str],
                  source: str) -> tuple[np.ndarray, str | list[str]]:
    """(observations (N, obs_dim) float64, the column name or names they came from)."""
    name = columns.get("observation", "observation")
    if name in table:
        values = table[name]
        if values.ndim == 1:  # a single number per row: obs_dim 1
            values = values[:, None]
        if values.ndim != 2:
            raise SaclabError(f"{source}: column {name!r} must hold one flat array per row, got shape "
                              f"{values.shape}")
        return _numbers(values, name, source), name
    prefix = columns.get("obs_", "obs_")
    names = []
    while (candidate := columns.get(f"obs_{len(names)}", f"{prefix}{len(names)}")) in table:
        names.append(candidate)
    if not names:
        raise SaclabError(f"{source}: no observation columns (expected {prefix}0, {prefix}1, ... or one "
                          f"{name!r} column; map yours with --columns)")
    return np.stack([_numbers(table[n], n, source) for n in names], axis=1), names


def _numbers(values: np.ndarray | None, name: str, source: str) -> np.ndarray:
    """A column as finite float64 numbers, or one line naming the first bad row."""
    assert values is not None
    try:
        numbers = values.astype(np.float64)  # text cells too: NumPy parses "1.5", "-2e3", "nan"
    except (TypeError, ValueError):
        numbers = np.empty(values.shape, np.float64)
        for index, cell in np.ndenumerate(values):  # only to name the first bad cell
            try:
                numbers[index] = float(cell)
            except (TypeError, ValueError):
                raise SaclabError(f"{source}: column {name}, row {index[0] + 1}: {str(cell)[:30]!r} is not a "
                                  "number") from None
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise SaclabError(f"{source}: column {name}, row {row + 1}: NaN or infinite value")
    return numbers


def _flags(values: np.ndarray | None, name: str, source: str) -> np.ndarray:
    """A column of 0/1 or true/false as booleans."""
    assert values is not None
    if values.dtype == bool:
        return values.astype(bool)
    if values.ndim != 1:
        raise SaclabError(f"{source}: column {name} must hold one flag per row, got shape {values.shape}")
    text = np.char.lower(np.char.strip(values.astype(str)))
    flags = np.isin(text, list(_TRUE))
    bad = ~flags & ~np.isin(text, list(_FALSE))
    if bad.any():
        row = int(np.argmax(bad))
        raise SaclabError(f"{source}: column {name}, row {row + 1}: {str(values[row])[:30]!r} is not 0/1 or "
                          "true/false")
    return flags


def _episode_ends(episode: np.ndarray | None, ended: np.ndarray, source: str) -> np.ndarray:
    """Where each episode's last row is; checks that an episode's rows are consecutive and that
    no episode goes on after a terminated or truncated row."""
    rows = len(ended)
    if episode is None:
        last = ended.copy()
        last[-1] = True
        return last
    if episode.ndim != 1:
        raise SaclabError(f"{source}: column episode must hold one id per row, got shape {episode.shape}")
    if episode.dtype.kind == "f" and not np.isfinite(episode).all():
        raise SaclabError(f"{source}: column episode, row {int(np.argmax(~np.isfinite(episode))) + 1}: "
                          "NaN or infinite id")
    ids = episode.astype(str)
    changes = np.append(ids[1:] != ids[:-1], True)
    run_ids = ids[changes]
    if len(set(run_ids.tolist())) != len(run_ids):
        seen: set[str] = set()
        for value in run_ids.tolist():
            if value in seen:
                raise SaclabError(f"{source}: the rows of episode {value[:30]!r} are not consecutive "
                                  "(sort the file by episode, then time)")
            seen.add(value)
    early = np.flatnonzero(ended[: rows - 1] & ~changes[: rows - 1])
    if len(early):
        row = int(early[0])
        raise SaclabError(f"{source}: row {row + 1} is terminated or truncated but row {row + 2} continues "
                          f"episode {ids[row][:30]!r}")
    return changes


def _transitions(observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                 truncated: np.ndarray, last: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """The Dataset arrays of the rows (episodes end where ``last``), and how many rows were dropped."""
    rows = len(actions)
    first = np.concatenate([[True], last[:-1]])
    keep = ~(last & ~terminated)  # an unterminated last row has no next observation
    next_obs = np.concatenate([observations[1:], observations[-1:]])
    next_obs[last] = observations[last]  # a terminated row's next observation is never bootstrapped from
    truncations = truncated & keep
    before_dropped = np.append(~keep[1:] & ~first[1:], False)  # the row before a dropped episode end
    truncations |= before_dropped
    arrays = {"observations": observations[keep], "actions": actions[keep], "rewards": rewards[keep],
              "next_observations": next_obs[keep], "terminations": terminated[keep],
              "truncations": truncations[keep], "episode_starts": first[keep]}
    return arrays, int(rows - keep.sum())


__all__ = ["import_logs", "table_to_dataset", "parse_columns", "ROLES"]
