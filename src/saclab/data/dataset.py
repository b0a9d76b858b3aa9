"""Offline datasets: a documented HDF5 format (docs/dataset-format.md).

One file holds N transitions, oldest first::

    /observations       (N, obs_dim) float32, or uint8/bool for image envs (flattened; gzip in ~1 MiB row chunks)
    /actions            (N,)         int64
    /rewards            (N,)         float32
    /next_observations  (N, obs_dim) as observations
    /terminations       (N,)         bool    true end of the MDP: no bootstrap
    /truncations        (N,)         bool    time limit: bootstraps
    /episode_starts     (N,)         bool    transition i begins an episode
    attrs: format="saclab-dataset", format_version, obs_dim, num_actions, obs_shape (images), json_attrs,
           and the provenance (env_id, source, seed, saclab_version, created,
           max_episode_steps, plus whatever the producer adds: policy, tier, ...)

Metadata values that are not str/int/float/bool are stored as JSON strings
and listed in the ``json_attrs`` attribute, so they load back as they were.
Loading checks the layout, dtypes, shapes, finiteness and (given an env)
the observation size and number of actions; anything wrong is one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saclab.core.types import Transition, observation_array
from saclab.errors import SaclabError
from saclab.files import atomic_write

FORMAT = "saclab-dataset"
FORMAT_VERSION = 1
ARRAYS = (*Transition._fields, "episode_starts")
"""The file's arrays: a ``Transition``'s fields, then where each episode starts."""
_DTYPES = {"observations": np.float32, "actions": np.int64, "rewards": np.float32,
           "next_observations": np.float32, "terminations": bool, "truncations": bool, "episode_starts": bool}
"""The arrays' dtypes; observations keep uint8 or bool (``core.types.observation_dtype``), else float32."""
CHUNK_BYTES = 1 << 20
"""Target size of one compressed chunk of observations (whole rows)."""


def _as_stored(name: str, array: Any) -> np.ndarray:
    if "observations" in name:
        return observation_array(array)
    return np.asarray(array, _DTYPES[name])


@dataclass
class Dataset:
    """A fixed set of transitions (the fields of a ``Transition``), their episode starts and provenance."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_starts: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, repr=False, compare=False)
    """The file it was loaded from (None for a dataset built in memory)."""

    def __post_init__(self) -> None:
        for name in ARRAYS:
            setattr(self, name, _as_stored(name, getattr(self, name)))
        self._check()

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def from_transitions(cls, transitions: Transition, episode_starts: np.ndarray,
                         metadata: dict[str, Any] | None = None) -> Dataset:
        return cls(*transitions, episode_starts, metadata=dict(metadata or {}))

    @property
    def transitions(self) -> Transition:
        return Transition(*(getattr(self, name) for name in Transition._fields))

    # ----------------------------------------------------------------------------------
    @property
    def env_id(self) -> str:
        return str(self.metadata.get("env_id", ""))

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """One observation's shape: the ``obs_shape`` metadata (images), else (obs_dim,)."""
        shape = self.metadata.get("obs_shape")
        if (isinstance(shape, list) and shape and all(isinstance(n, int) and n > 0 for n in shape)
                and int(np.prod(shape)) == self.obs_dim):
            return tuple(shape)
        return (self.obs_dim,)

    @property
    def num_actions(self) -> int:
        return int(self.metadata.get("num_actions", int(self.actions.max()) + 1))

    def _check(self, source: str = "dataset") -> None:
        n = len(self.actions)
        if n == 0:
            raise SaclabError(f"{source} is empty (0 transitions)")
        if self.observations.ndim != 2 or self.next_observations.shape != self.observations.shape:
            raise SaclabError(f"{source}: observations and next_observations must both be (N, obs_dim), got "
                              f"{self.observations.shape} and {self.next_observations.shape}")
        for name in ARRAYS:
            if len(getattr(self, name)) != n:
                raise SaclabError(f"{source}: {name} has {len(getattr(self, name))} rows, expected {n}")
        for name in ("observations", "rewards", "next_observations"):
            if not np.issubdtype(getattr(self, name).dtype, np.floating):
                continue  # uint8 and bool hold no NaN
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise SaclabError(f"{source}: {name} contains NaN or infinite values (first at transition {row})")
        if "obs_dim" in self.metadata and int(self.metadata["obs_dim"]) != self.obs_dim:
            raise SaclabError(f"{source}: metadata says obs_dim={self.metadata['obs_dim']} but observations "
                              f"have {self.obs_dim} columns")
        if self.actions.min() < 0 or ("num_actions" in self.metadata and self.actions.max() >= self.num_actions):
            raise SaclabError(f"{source}: actions must lie in [0, {self.num_actions}), found "
                              f"[{self.actions.min()}, {self.actions.max()}]")

    def check_env(self, obs_dim: int, num_actions: int, env_id: str | None = None) -> None:
        """Refuse a dataset whose spaces do not fit the environment."""
        where = f"dataset ({self.env_id or 'unknown env'})"
        if self.obs_dim != obs_dim or self.num_actions != num_actions:
            raise SaclabError(f"{where} has obs_dim={self.obs_dim}, {self.num_actions} actions; "
                              f"{env_id or 'the environment'} has obs_dim={obs_dim}, {num_actions} actions")

    def fingerprint(self) -> str:
        """SHA-256 of the arrays (names, dtypes, shapes and bytes): identifies the data, not the file."""
        digest = hashlib.sha256()
        for name in ARRAYS:
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    # ----------------------------------------------------------------------------------
    def episode_ids(self) -> np.ndarray:
        """Episode index of each transition."""
        return np.cumsum(self.episode_starts) - 1 + (0 if self.episode_starts[0] else 1)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode (the last may be incomplete)."""
        return np.bincount(self.episode_ids(), weights=self.rewards)

    def discounted_returns(self, gamma: float) -> np.ndarray:
        """Monte Carlo discounted return from each transition to its episode's end.

        G_t = r_t + gamma * G_{t+1} within an episode.  After a truncation (or the
        end of the data) the tail is unknown and counted as 0, so this is a lower
        bound there; after a termination it is exact.
        """
        returns = np.zeros(len(self), np.float64)
        future = 0.0
        continues = np.append(~self.episode_starts[1:], False)
        for t in range(len(self) - 1, -1, -1):
            future = self.rewards[t] + gamma * future * continues[t]
            returns[t] = future
        return returns

    def info(self) -> dict[str, Any]:
        """Size, return statistics and spaces (``saclab dataset info``)."""
        episode_returns = self.episode_returns()
        counts = np.bincount(self.actions, minlength=self.num_actions)
        return {
            "transitions": len(self),
            "episodes": int(len(episode_returns)),
            "terminations": int(self.terminations.sum()),
            "truncations": int(self.truncations.sum()),
            "return_mean": float(episode_returns.mean()),
            "return_std": float(episode_returns.std()),
            "return_min": float(episode_returns.min()),
            "return_max": float(episode_returns.max()),
            "obs_dim": self.obs_dim,
            "num_actions": self.num_actions,
            "action_counts": counts.tolist(),
            **{k: v for k, v in self.metadata.items() if k not in ("obs_dim", "num_actions")},
        }

    # ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset as HDF5, atomically (temp file + rename)."""
        return write_file(path, {name: getattr(self, name) for name in ARRAYS}, self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Dataset:
        """Read and validate a dataset file (one clear error for anything wrong)."""
        import h5py

        path = Path(path)
        if not path.is_file():
            raise SaclabError(f"dataset not found: {path}")
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise SaclabError(f"{path} is not a saclab dataset (HDF5 without format={FORMAT!r}; "
                                      "use `saclab dataset import` for Minari datasets)")
                if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
                    raise SaclabError(f"{path}: dataset format version {f.attrs['format_version']} "
                                      f"is newer than this saclab ({FORMAT_VERSION})")
                missing = [name for name in ARRAYS if name not in f]
                if missing:
                    raise SaclabError(f"{path}: wrong layout, missing {', '.join(missing)}")
                arrays = {name: f[name][()] for name in ARRAYS}
                metadata = {k: _attr(v) for k, v in f.attrs.items()
                            if k not in ("format", "format_version", "json_attrs")}
                for key in json.loads(_attr(f.attrs.get("json_attrs", "[]"))):
                    if key in metadata:
                        metadata[key] = json.loads(metadata[key])
        except SaclabError:
            raise
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise SaclabError(f"corrupt dataset {path}: {e}") from None
        for name in ("terminations", "truncations", "episode_starts"):
            if arrays[name].dtype != bool:
                raise SaclabError(f"{path}: {name} must be boolean, got {arrays[name].dtype}")
        if not np.issubdtype(arrays["actions"].dtype, np.integer):
            raise SaclabError(f"{path}: actions must be integers, got {arrays['actions'].dtype}")
        if arrays["observations"].dtype != arrays["next_observations"].dtype:
            raise SaclabError(f"{path}: observations ({arrays['observations'].dtype}) and next_observations "
                              f"({arrays['next_observations'].dtype}) must have one dtype")
        dataset = cls.__new__(cls)
        for name in ARRAYS:
            setattr(dataset, name, _as_stored(name, arrays[name]))
        dataset.metadata = metadata
        dataset.path = path
        for name in ARRAYS:
            if getattr(dataset, name).ndim != (2 if "observations" in name else 1):
                raise SaclabError(f"{path}: wrong layout, {name} has shape {getattr(dataset, name).shape}")
        dataset._check(source=str(path))
        return dataset

ROW_BLOCK_BYTES = 64 << 20
"""Observation rows written per block: a lazily built column (a frame-stacked buffer's stacks) is
never materialized whole."""


def write_file(path: str | os.PathLike, columns: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write ``columns`` (the ``ARRAYS``, each an array or a lazily indexed column with ``shape``,
    ``dtype`` and row slicing) as a saclab HDF5 dataset, atomically (temp file + rename).
    Observations are written in blocks of rows, compressed in chunks of whole rows."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, obs_dim = columns["observations"].shape
    attrs = {**metadata, "format": FORMAT, "format_version": FORMAT_VERSION, "obs_dim": int(obs_dim),
             "num_actions": int(metadata.get("num_actions", int(np.max(columns["actions"][:n])) + 1))}

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for name in ARRAYS:
                column = columns[name]
                if len(column.shape) != 2:  # the small one-value-per-transition arrays
                    f.create_dataset(name, data=_as_stored(name, column[:n]), chunks=True, compression="gzip",
                                     compression_opts=4)
                    continue
                dtype = _as_stored(name, column[:1]).dtype
                rows = max(1, min(n, CHUNK_BYTES // max(1, obs_dim * dtype.itemsize)))  # ~CHUNK_BYTES a chunk
                stored = f.create_dataset(name, shape=(n, obs_dim), dtype=dtype, chunks=(rows, obs_dim),
                                          compression="gzip", compression_opts=4)
                block = max(rows, ROW_BLOCK_BYTES // max(1, obs_dim * dtype.itemsize) // rows * rows)
                for start in range(0, n, block):
                    stored[start:start + block] = _as_stored(name, column[start:start + block])
            encoded = []
            for key, value in attrs.items():
                value = _attr(value)
                if not isinstance(value, (str, int, float, bool)):
                    value = json.dumps(value)
                    encoded.append(key)
                f.attrs[key] = value
            f.attrs["json_attrs"] = json.dumps(encoded)

    return atomic_write(path, write)


def save_replay(buffer: Any, config: Any, seed: int, source: str, path: str | os.PathLike) -> Path:
    """The transitions of a replay buffer, oldest first, written as a dataset file.  ``buffer``
    gives them as ``transition_rows()`` (arrays, or row views that build a frame-stacked
    buffer's observations a block at a time: a 500k Atari buffer's stacks are 28 GB whole)."""
    from saclab.envs.make import env_spec

    rows = buffer.transition_rows()
    ended = np.asarray(rows.terminations[:], bool) | np.asarray(rows.truncations[:], bool)
    starts = np.concatenate([[True], ended[:-1]])
    spec = env_spec(config.env)
    metadata = provenance(config, seed, source, buffer.obs_dim, spec.num_actions, spec.obs_shape)
    return write_file(path, {**rows._asdict(), "episode_starts": starts}, metadata)


def provenance(config: Any, seed: int, source: str, obs_dim: int, num_actions: int,
               obs_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The metadata every saclab dataset carries (``obs_shape`` when observations are not flat)."""
    from saclab.envs.make import registered_episode_limit  # gymnasium only when a dataset is made
    from saclab.version import __version__

    shape = {"obs_shape": [int(n) for n in obs_shape]} if obs_shape is not None and len(obs_shape) > 1 else {}
    return {"env_id": config.env, "obs_dim": obs_dim, "num_actions": num_actions, **shape, "source": source,
            "seed": seed, "saclab_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "max_episode_steps": config.max_episode_steps or registered_episode_limit(config.env) or 0}


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
