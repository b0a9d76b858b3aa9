"""The held-out episodes of an offline run: the seeded episode-level split, and the data on the
device that the offline metrics (``core.offline_metrics``) are computed on after every epoch.

``validation_fraction`` F holds out round(F x episodes) whole episodes (at least one, and at
least one left to train on), drawn with the run seed; training sees only the others, so
the metrics measure how the critics and the policy generalise to episodes they never saw.
-1 (the default) means 0.1 for a run without a simulator (the metrics are all it has) and 0
with one; with 0 the metrics are computed on the training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from saclab.config import SACConfig
from saclab.core.types import Batch
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.runs.epochs import device_batch

AUTO_FRACTION = 0.1
"""The held-out share of a run without a simulator when ``validation_fraction`` is -1."""
CHUNK = 4096
"""States per forward pass of the metrics (bounds their memory on large splits)."""


def validation_fraction(config: SACConfig, episodes: int) -> float:
    """The share of episodes to hold out: the config's, or for -1 ``AUTO_FRACTION`` without a
    simulator (0 when the dataset has a single episode) and 0 with one."""
    if config.validation_fraction >= 0:
        return config.validation_fraction
    return AUTO_FRACTION if not config.env and episodes >= 2 else 0.0


def subset(dataset: Dataset, rows: np.ndarray, split: str) -> Dataset:
    """The transitions at ``rows`` (a boolean mask of whole episodes), each episode still starting
    where its id changes."""
    ids = dataset.episode_ids()[rows]
    starts = np.concatenate([[True], ids[1:] != ids[:-1]])
    arrays = [array[rows] for array in dataset.transitions]
    return Dataset(*arrays, starts, metadata={**dataset.metadata, "split": split})


def split_episodes(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """(training episodes, held-out episodes or None for ``fraction`` 0), drawn with ``seed``."""
    if fraction <= 0:
        return dataset, None
    ids = dataset.episode_ids()
    episodes = int(ids.max()) + 1
    if episodes < 2:
        raise SaclabError(f"validation_fraction {fraction} needs at least 2 episodes, the dataset has 1 "
                          "(give the logs an episode column, or pass --validation-fraction 0)")
    held = min(episodes - 1, max(1, round(fraction * episodes)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E1D]))
    held_out = np.isin(ids, rng.choice(episodes, held, replace=False))
    return subset(dataset, ~held_out, "train"), subset(dataset, held_out, "validation")


@dataclass
class MetricData:
    """The metrics' states on the device, in chunks of ``CHUNK``: ``batch`` (C, M, ...), ``weights``
    (C, M) 1 for a state and 0 for padding, ``starts`` (C, M) 1 at an episode's first state."""

    batch: Batch
    weights: jax.Array
    starts: jax.Array
    split: str
    """"validation" (held-out episodes) or "train" (no split: the training data)."""
    transitions: int
    episodes: int


def metric_data(dataset: Dataset, config: SACConfig, split: str) -> MetricData:
    """``dataset`` (its TD targets as training builds them: n-step, truncation rule) in chunks."""
    batch = device_batch(dataset, config.truncation_is_terminal, False, config.n_step, config.gamma)
    n = len(dataset)
    size = min(CHUNK, n)
    chunks = -(-n // size)
    pad = chunks * size - n

    def chunked(x: Any, fill: np.ndarray | None = None) -> jax.Array:
        x = np.asarray(x)
        padding = np.repeat(x[-1:], pad, axis=0) if fill is None else fill  # real rows: finite; they weigh 0
        return jax.device_put(np.concatenate([x, padding]).reshape(chunks, size, *x.shape[1:]))

    zeros = np.zeros(pad, np.float32)
    return MetricData(jax.tree_util.tree_map(chunked, batch), chunked(np.ones(n, np.float32), zeros),
                      chunked(dataset.episode_starts.astype(np.float32), zeros), split, n,
                      int(dataset.episode_starts.sum()))


__all__ = ["validation_fraction", "split_episodes", "subset", "metric_data", "MetricData", "AUTO_FRACTION"]
