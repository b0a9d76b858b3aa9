"""The types every layer shares: transitions at rest, the update's minibatch, an env's sizes.

Plain NumPy (no JAX import), so the replay buffer and the dataset code load
without JAX, Flax, Optax or Gymnasium.

* ``Transition``: N transitions with a leading axis, in Gymnasium's (and Minari's,
  and the dataset file's) vocabulary.  The replay buffer stores one, a ``Dataset``
  is one plus episode starts, collection and Minari io produce one.
* ``Batch``: what one SAC update reads (``core.agent``): the transitions with
  ``terminated`` as the float that stops bootstrapping, and importance weights.
  ``Transition.to_batch`` is the one conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class EnvSpec:
    """What the networks need to know about an environment.

    ``obs_shape`` is one observation's shape ((obs_dim,) for flat observations, the default);
    ``obs_dim`` is its size, prod(obs_shape).  ``obs_dtype`` is how the env emits it and how
    buffers and datasets store it (``observation_dtype``): ``uint8`` pixels are scaled to [0, 1]
    inside the networks, ``bool`` channels (MinAtar) become 0/1, anything else is float32."""

    env_id: str
    obs_dim: int
    num_actions: int
    obs_shape: tuple[int, ...] = ()
    obs_dtype: str = "float32"

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.obs_shape) or (int(self.obs_dim),)
        object.__setattr__(self, "obs_shape", shape)  # frozen: set once, here
        if int(np.prod(shape)) != self.obs_dim:
            raise ValueError(f"obs_dim {self.obs_dim} is not the size of obs_shape {shape}")

    @classmethod
    def of_shape(cls, env_id: str, obs_shape: tuple[int, ...], num_actions: int,
                 obs_dtype: str = "float32") -> EnvSpec:
        """The spec of an env whose observations have ``obs_shape`` (obs_dim is their size)."""
        return cls(env_id, int(np.prod(obs_shape)), num_actions, tuple(obs_shape), obs_dtype)


COMPACT_OBS_DTYPES = ("uint8", "bool")
"""Observation dtypes stored as they are (1 byte a value); every other dtype is stored as float32."""


def observation_dtype(dtype: Any) -> np.dtype:
    """The dtype observations of ``dtype`` are stored and sent to the networks in: uint8 and bool
    as they are (a quarter of float32's bytes; the networks convert them), anything else float32."""
    dtype = np.dtype(dtype)
    return dtype if dtype.name in COMPACT_OBS_DTYPES else np.dtype(np.float32)


def observation_array(obs: Any) -> np.ndarray:
    """Observations as the networks take them: uint8 and bool arrays unchanged, anything else float32.

    The networks scale uint8 by 1/255 and read bool as 0/1 (``core.networks``), so a uint8 image
    must not be converted to float32 before it reaches them."""
    obs = np.asarray(obs)
    return obs.astype(observation_dtype(obs.dtype), copy=False)


class Batch(NamedTuple):
    """One minibatch of transitions (leading axis B): the input of one update."""

    obs: Any  # (B, obs_dim) float32, or uint8/bool as stored (observation_dtype)
    actions: Any  # (B,) int32
    rewards: Any  # (B,) float32
    next_obs: Any  # (B, obs_dim) float32
    terminated: Any  # (B,) float32: 1 stops bootstrapping
    weights: Any  # (B,) float32 importance weights (ones for uniform replay)
    horizons: Any  # (B,) float32 rewards summed into ``rewards`` (1: one-step; m: an m-step return, data.nstep)


def batch_from_numpy(
    obs: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_obs: np.ndarray,
    terminated: np.ndarray,
    weights: np.ndarray | None = None,
    horizons: np.ndarray | None = None,
) -> Batch:
    """A ``Batch`` with the dtypes the update expects (weights and horizons default to ones);
    uint8 and bool observations stay so (``observation_array``): the network converts them."""
    n = len(actions)
    return Batch(
        obs=observation_array(obs),
        actions=np.asarray(actions, np.int32),
        rewards=np.asarray(rewards, np.float32),
        next_obs=observation_array(next_obs),
        terminated=np.asarray(terminated, np.float32),
        weights=np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32),
        horizons=np.ones(n, np.float32) if horizons is None else np.asarray(horizons, np.float32),
    )


class Transition(NamedTuple):
    """Transitions (s, a, r, s', terminated, truncated) as arrays with a leading axis N."""

    observations: np.ndarray  # (N, obs_dim) float32, or uint8/bool (observation_dtype); images flattened
    actions: np.ndarray  # (N,) integer
    rewards: np.ndarray  # (N,) float32
    next_observations: np.ndarray  # (N, obs_dim), as observations
    terminations: np.ndarray  # (N,) bool: the MDP ended, no bootstrap
    truncations: np.ndarray  # (N,) bool: a time limit, bootstraps

    @classmethod
    def zeros(cls, n: int, obs_dim: int, obs_dtype: Any = np.float32) -> Transition:
        """Storage for ``n`` transitions (the replay buffer's), observations in ``observation_dtype(obs_dtype)``."""
        dtype = observation_dtype(obs_dtype)
        return cls(np.zeros((n, obs_dim), dtype), np.zeros(n, np.int32), np.zeros(n, np.float32),
                   np.zeros((n, obs_dim), dtype), np.zeros(n, bool), np.zeros(n, bool))

    @classmethod
    def stack(cls, steps: Sequence[Sequence[Any]]) -> Transition:
        """Per-step records (each a ``Transition`` of one step's values) stacked on a new leading axis."""
        return cls(*(np.stack(column) for column in zip(*steps, strict=True)))

    @classmethod
    def concatenate(cls, parts: Sequence[Transition]) -> Transition:
        """Pieces (episodes) joined along the leading axis."""
        return cls(*(np.concatenate(column) for column in zip(*parts, strict=True)))

    def take(self, indices: Any) -> Transition:
        """The transitions at ``indices`` (any NumPy index)."""
        return Transition(*(array[indices] for array in self))

    def ended(self) -> np.ndarray:
        """Where an episode ended (terminated or truncated)."""
        return self.terminations | self.truncations

    def to_batch(self, weights: np.ndarray | None = None, truncation_is_terminal: bool = False,
                 horizons: np.ndarray | None = None) -> Batch:
        """The update's ``Batch``: only terminations stop bootstrapping, unless
        ``truncation_is_terminal`` (the notebook's ``done``).  ``horizons``: for n-step rewards."""
        terminated = self.ended() if truncation_is_terminal else self.terminations
        return batch_from_numpy(self.observations, self.actions, self.rewards, self.next_observations,
                                terminated, weights, horizons)
