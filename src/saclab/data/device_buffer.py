"""A device-resident replay ring buffer: a pytree of preallocated arrays, written and sampled inside jit.

The compiled online loop (``runs.compiled``) keeps it in its ``lax.scan`` state,
so insertion and sampling never leave the device.  Like the host
``ReplayBuffer`` it stores terminations and truncations apart and samples
uniformly with replacement in O(batch).  (A separate module from
``data.buffer``, which must load without JAX.)
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from saclab.core.types import Batch, Transition, observation_array


@flax.struct.dataclass
class DeviceReplay:
    """Fixed-capacity ring of transitions; ``head`` is the next slot written, ``size`` how many are held."""

    observations: jax.Array  # (capacity, *obs_shape)
    actions: jax.Array  # (capacity,) int32
    rewards: jax.Array  # (capacity,) float32
    next_observations: jax.Array  # (capacity, *obs_shape)
    terminations: jax.Array  # (capacity,) bool
    truncations: jax.Array  # (capacity,) bool
    head: jax.Array  # () int32
    size: jax.Array  # () int32

    @property
    def capacity(self) -> int:
        return self.actions.shape[0]


def empty_replay(capacity: int, obs_shape: tuple[int, ...], obs_dtype: str = "float32") -> DeviceReplay:
    """An empty buffer of ``capacity`` transitions of observations shaped ``obs_shape``."""
    return DeviceReplay(
        observations=jnp.zeros((capacity, *obs_shape), obs_dtype),
        actions=jnp.zeros(capacity, jnp.int32),
        rewards=jnp.zeros(capacity, jnp.float32),
        next_observations=jnp.zeros((capacity, *obs_shape), obs_dtype),
        terminations=jnp.zeros(capacity, bool),
        truncations=jnp.zeros(capacity, bool),
        head=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def add(replay: DeviceReplay, obs: jax.Array, action: jax.Array, reward: jax.Array, next_obs: jax.Array,
        terminated: jax.Array, truncated: jax.Array) -> DeviceReplay:
    """``replay`` with one transition written at ``head`` (the oldest is overwritten once full)."""
    i = replay.head

    def put(array: jax.Array, value: jax.Array) -> jax.Array:
        return array.at[i].set(jnp.asarray(value, array.dtype))

    return replay.replace(
        observations=put(replay.observations, obs),
        actions=put(replay.actions, action),
        rewards=put(replay.rewards, reward),
        next_observations=put(replay.next_observations, next_obs),
        terminations=put(replay.terminations, terminated),
        truncations=put(replay.truncations, truncated),
        head=(i + 1) % replay.capacity,
        size=jnp.minimum(replay.size + 1, replay.capacity),
    )


def sample(replay: DeviceReplay, key: jax.Array, batch_size: int, truncation_is_terminal: bool = False) -> Batch:
    """A uniform minibatch (with replacement) of the ``size`` transitions held: O(batch).
    Only terminations stop bootstrapping, unless ``truncation_is_terminal`` (the notebook's ``done``)."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(replay.size, 1))
    terminated = replay.terminations[idx]
    if truncation_is_terminal:
        terminated = terminated | replay.truncations[idx]
    ones = jnp.ones(batch_size, jnp.float32)
    return Batch(obs=replay.observations[idx], actions=replay.actions[idx], rewards=replay.rewards[idx],
                 next_obs=replay.next_observations[idx], terminated=terminated.astype(jnp.float32),
                 weights=ones, horizons=ones)


def max_reward(replay: DeviceReplay) -> jax.Array:
    """The largest reward held (-inf when empty)."""
    held = jnp.arange(replay.capacity) < replay.size
    return jnp.max(jnp.where(held, replay.rewards, -jnp.inf))


class HostView:
    """The transitions of a ``DeviceReplay`` on the host, oldest first, with the interface
    ``dataset.save_replay`` reads (``transition_rows()``, ``obs_dim``)."""

    def __init__(self, replay: DeviceReplay) -> None:
        size, head, capacity = int(replay.size), int(replay.head), replay.capacity
        order = np.arange(size) if size < capacity else (np.arange(capacity) + head) % capacity
        arrays = jax.device_get(replay)
        self._transitions = Transition(_rows(arrays.observations[order]), np.asarray(arrays.actions[order]),
                                       np.asarray(arrays.rewards[order]), _rows(arrays.next_observations[order]),
                                       np.asarray(arrays.terminations[order]), np.asarray(arrays.truncations[order]))
        self.obs_dim = int(np.prod(replay.observations.shape[1:]))

    def transition_rows(self) -> Transition:
        return self._transitions

    def __len__(self) -> int:
        return len(self._transitions.actions)


def _rows(observations: np.ndarray) -> np.ndarray:
    """(N, *obs_shape) -> (N, obs_dim), the dataset's layout: uint8 and bool as they are, else float32
    (``core.types.observation_array``); images keep their shape in the dataset's ``obs_shape``."""
    observations = observation_array(observations)
    return observations.reshape(len(observations), -1)
