"""What an offline epoch reads: the dataset on the device, and the minibatch indices of each epoch;
and the epoch itself, SAC's or behaviour cloning's, for one seed or several at once (``jax.vmap``)."""

from __future__ import annotations

import functools
import math

import jax
import numpy as np

from saclab.config import SACConfig
from saclab.core.agent import Learner, SACState, update_epoch
from saclab.core.bc import bc_update_epoch
from saclab.core.types import Batch, EnvSpec, Transition
from saclab.data.dataset import Dataset
from saclab.data.nstep import n_step_transitions
from saclab.envs.make import env_spec
from saclab.errors import SaclabError


def epoch_indices(rng: np.random.Generator, num_transitions: int, batch_size: int) -> np.ndarray:
    """A fresh permutation of ``range(num_transitions)`` cut into ``num_transitions // batch_size``
    minibatches, shape (U, batch_size) int32: every transition at most once (the remainder,
    fewer than ``batch_size`` transitions, is left out of this epoch)."""
    updates = num_transitions // batch_size
    return rng.permutation(num_transitions)[: updates * batch_size].reshape(updates, batch_size).astype(np.int32)


def notebook_permutation(seed: int, capacity: int) -> np.ndarray:
    """The notebook buffer's ``mirror_index``: one permutation of the whole capacity,
    drawn once (when the buffer is created) and reused by every epoch."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x0B00C])).permutation(capacity)


def notebook_epoch_indices(permutation: np.ndarray, num_transitions: int, batch_size: int) -> np.ndarray:
    """The notebook's offline sampler, reproduced only to reproduce the notebook (its bug).

    The notebook walks ``mirror_index[start:start + batch_size]`` for
    ``start = 0, batch_size, ...`` over ``N // batch_size`` minibatches, where
    ``mirror_index`` permutes the buffer's whole *capacity* (500k), not its N
    filled slots.  So most indices point at never-written, all-zero slots
    (zero state, action 0, reward 0, not done), and most real transitions are
    never seen.  Here every index >= N is mapped to row N, which ``train_offline``
    fills with zeros; the (U, batch_size) result is the same in every epoch.
    """
    updates = num_transitions // batch_size
    if len(permutation) < updates * batch_size:
        raise SaclabError(f"notebook_epoch_sampler needs buffer_size >= the dataset's {num_transitions} "
                          f"transitions, got {len(permutation)}")
    idx = permutation[: updates * batch_size].reshape(updates, batch_size)
    return np.where(idx < num_transitions, idx, num_transitions).astype(np.int32)


def device_batch(dataset: Dataset, truncation_is_terminal: bool = False, zero_row: bool = False,
                 n_step: int = 1, gamma: float = 0.99) -> Batch:
    """The whole dataset as one device-resident ``Batch`` (weights all ones).

    ``terminated`` is the dataset's terminations (or terminations | truncations
    with ``truncation_is_terminal``); with ``n_step`` > 1 transition i sums up
    to n rewards of its episode (``data.nstep``), computed once for the whole
    dataset; ``zero_row`` appends one all-zero transition (the notebook
    sampler's empty slot).
    """
    transitions, horizons = dataset.transitions, None
    if n_step > 1:
        n = len(dataset)
        transitions, horizons = n_step_transitions(transitions, np.arange(n), n - 1 - np.arange(n), n_step, gamma,
                                                   dataset.episode_starts)
    if zero_row:
        transitions = Transition(*(np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)]) for a in transitions))
        horizons = None if horizons is None else np.concatenate([horizons, [1]])
    return jax.device_put(transitions.to_batch(truncation_is_terminal=truncation_is_terminal, horizons=horizons))


def check_dataset(dataset: Dataset, config: SACConfig, spec: EnvSpec | None = None) -> EnvSpec:
    """Refuse a dataset that does not fit ``config.env`` or holds less than one minibatch.

    Without an env (``config.env`` ""), the observation size and the number of actions are the
    dataset's (its ``num_actions`` metadata, else its largest action + 1)."""
    if not config.env:
        spec = EnvSpec.of_shape("", dataset.obs_shape, dataset.num_actions, dataset.observations.dtype.name)
    elif dataset.env_id and dataset.env_id != config.env:
        raise SaclabError(f"dataset was collected on {dataset.env_id} but the config's env is {config.env} "
                          f"(pass --env {dataset.env_id})")
    spec = spec or env_spec(config.env)
    dataset.check_env(spec.obs_dim, spec.num_actions, config.env or "the dataset")
    if dataset.observations.dtype.name != spec.obs_dtype:  # the networks scale uint8 by 1/255, and only uint8
        raise SaclabError(f"dataset stores observations as {dataset.observations.dtype.name}, but "
                          f"{config.env or 'the dataset'} emits {spec.obs_dtype}: recollect it with this saclab")
    if len(dataset) < config.batch_size:
        raise SaclabError(f"dataset has {len(dataset)} transitions, fewer than one minibatch "
                          f"(batch_size={config.batch_size})")
    if config.notebook_epoch_sampler and config.buffer_size < len(dataset):
        raise SaclabError(f"notebook_epoch_sampler needs buffer_size >= the dataset's {len(dataset)} "
                          f"transitions, got {config.buffer_size}")
    return spec


def reward_scaled(dataset: Dataset) -> Dataset:
    """The dataset with its rewards multiplied by its ``reward_scale`` metadata (``saclab dataset import
    --reward-scale``): what training sees.  The dataset itself when there is none."""
    scale = dataset.metadata.get("reward_scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or scale <= 0:
        raise SaclabError(f"dataset {dataset.path or ''}: reward_scale must be a number > 0, got {scale!r}")
    if scale == 1.0:
        return dataset
    arrays = [dataset.rewards * np.float32(scale) if name == "rewards" else getattr(dataset, name)
              for name in (*Transition._fields, "episode_starts")]
    scaled = Dataset(*arrays, metadata=dict(dataset.metadata))
    scaled.path = dataset.path
    return scaled


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def bc_update_epoch_seeds(learner: Learner, states: SACState, data: Batch,
                          minibatch_indices: jax.Array) -> tuple[SACState, dict]:
    """``bc_update_epoch`` of every seed in one call, as ``update_epoch_seeds``."""
    return jax.vmap(lambda state, indices: bc_update_epoch(learner, state, data, indices))(states,
                                                                                           minibatch_indices)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def update_epoch_seeds(
    learner: Learner, states: SACState, data: Batch, minibatch_indices: jax.Array
) -> tuple[SACState, dict]:
    """``update_epoch`` of every seed in one call: ``states`` stacked on a leading seed axis (S, ...),
    ``minibatch_indices`` (S, U, B), ``data`` shared.  Metrics come back (S, U).

    On a GPU one seed's epoch leaves most of the device idle; vmapping turns every matmul of an
    update into a batched one, so S seeds cost little more than one.  Batched matmuls may round
    differently in the last bits from S separate runs (``tests/test_vmap_seeds.py``)."""
    return jax.vmap(lambda state, indices: update_epoch(learner, state, data, indices))(states, minibatch_indices)


__all__ = ["epoch_indices", "notebook_permutation", "notebook_epoch_indices", "device_batch", "check_dataset",
           "update_epoch_seeds", "bc_update_epoch_seeds", "reward_scaled"]
