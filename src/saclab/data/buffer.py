"""Replay buffer: preallocated arrays, O(1) insert, O(batch) sampling.

Uniform sampling draws ``batch`` indices with replacement (O(batch)); the
optional proportional prioritised sampling (Schaul et al. 2016) uses a sum
tree: O(batch * log capacity) to sample and to update priorities.

Terminations and truncations are stored apart: only ``terminated`` stops
bootstrapping.  Observations are stored flat, (capacity, obs_dim), in the env's
dtype when it is uint8 or bool (images: a quarter of float32's bytes; the
networks convert them inside the jitted call), else float32.  With
``frame_stack`` k (Atari's 4-frame stacks), each frame is stored once
(``data.frame_stack``): about one frame per slot instead of 2k.
The buffer saves to and loads from safetensors (no pickle).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from saclab.core.types import Batch, Transition, observation_dtype
from saclab.data.frame_stack import FrameRing, StackedColumn
from saclab.data.nstep import n_step_transitions
from saclab.errors import SaclabError
from saclab.files import atomic_write

_OLD_NAMES = dict(zip(Transition._fields, ("obs", "actions", "rewards", "next_obs", "terminated", "truncated"),
                      strict=True))  # the tensor names of buffers saved before the Transition type


class SumTree:
    """Binary sum tree over ``capacity`` leaves (vectorised over a batch)."""

    def __init__(self, capacity: int) -> None:
        self.leaves = 1 << max(0, int(capacity - 1).bit_length())
        self.nodes = np.zeros(2 * self.leaves, np.float64)  # node i has children 2i, 2i+1; root 1

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def set(self, indices: np.ndarray, values: np.ndarray) -> None:
        nodes = np.asarray(indices, np.int64) + self.leaves
        self.nodes[nodes] = values
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self.nodes[nodes] = self.nodes[2 * nodes] + self.nodes[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self.nodes[np.asarray(indices, np.int64) + self.leaves]

    def find(self, masses: np.ndarray) -> np.ndarray:
        """Leaf index of each prefix-sum mass in [0, total)."""
        node = np.ones(len(masses), np.int64)
        masses = np.array(masses, np.float64)
        while node[0] < self.leaves:
            left = 2 * node
            go_right = masses >= self.nodes[left]
            masses = np.where(go_right, masses - self.nodes[left], masses)
            node = np.where(go_right, left + 1, left)
        return node - self.leaves


class ReplayBuffer:
    """Fixed-capacity circular buffer of transitions."""

    def __init__(
        self,
        obs_dim: int,
        capacity: int,
        prioritized: bool = False,
        priority_exponent: float = 0.6,
        importance_exponent: float = 0.4,
        priority_eps: float = 1e-6,
        obs_dtype: str = "float32",
        frame_stack: int = 0,
    ) -> None:
        if capacity < 1:
            raise SaclabError(f"buffer capacity must be >= 1, got {capacity}")
        self.obs_dim = obs_dim
        self.capacity = capacity
        self.frames: FrameRing | None = None
        if frame_stack > 1:  # observations are views of a ring of frames, each stored once
            if obs_dim % frame_stack:
                raise SaclabError(f"observations of size {obs_dim} are not {frame_stack} stacked frames")
            self.frames = FrameRing(capacity, frame_stack, obs_dim // frame_stack, observation_dtype(obs_dtype))
            self.storage = Transition.zeros(capacity, 0)._replace(
                observations=StackedColumn(self.frames, capacity, 0),
                next_observations=StackedColumn(self.frames, capacity, 1))
        else:
            self.storage = Transition.zeros(capacity, obs_dim, obs_dtype)
        self.head = 0  # next slot to write
        self.size = 0
        self.prioritized = prioritized
        self.priority_exponent = priority_exponent
        self.importance_exponent = importance_exponent
        self.priority_eps = priority_eps
        self.tree = SumTree(capacity) if prioritized else None
        self.max_priority = 1.0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action: int, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        """Store one transition (O(1); O(log N) with priorities)."""
        i = self.head
        obs, next_obs = np.reshape(obs, -1), np.reshape(next_obs, -1)  # an image is stored flat
        if self.frames is not None:  # the observation columns are views of the frame ring
            self._put_frames(i, obs, next_obs)
        for array, value in zip(self.storage, (obs, action, reward, next_obs, terminated, truncated), strict=True):
            if not isinstance(array, StackedColumn):
                array[i] = value
        if self.tree is not None:
            # New transitions get the largest priority seen, so each is replayed at least once soon.
            self.tree.set(np.array([i]), np.array([self.max_priority**self.priority_exponent]))
        self.head = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _put_frames(self, i: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Slot i's stacks into the frame ring: only the new frame when ``obs`` continues the last
        transition's episode, the whole first stack when an episode begins."""
        previous = (i - 1) % self.capacity
        ended = self.storage.terminations[previous] or self.storage.truncations[previous]
        continues = bool(self.size > 0 and not ended
                         and np.array_equal(self.frames.last_next_observation(previous), obs))
        oldest = None  # the oldest slot still stored after this write
        if 0 < self.size < self.capacity:
            oldest = 0
        elif self.size == self.capacity and self.capacity > 1:
            oldest = (i + 1) % self.capacity
        self.frames.put(i, obs, next_obs, continues, oldest)

    def sample_indices(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of a minibatch and their importance weights."""
        if self.size == 0:
            raise SaclabError("cannot sample from an empty replay buffer")
        if self.tree is None:
            return rng.integers(0, self.size, batch_size), np.ones(batch_size, np.float32)
        total = self.tree.total
        # Stratified: one uniform draw in each of batch_size equal slices of the mass.
        masses = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        indices = np.minimum(self.tree.find(masses), self.size - 1)
        probs = self.tree.get(indices) / total
        weights = (self.size * probs) ** (-self.importance_exponent)
        weights /= weights.max()
        return indices, weights.astype(np.float32)

    def gather(self, indices: np.ndarray, weights: np.ndarray | None = None,
               truncation_is_terminal: bool = False, n_step: int = 1, gamma: float = 0.99) -> Batch:
        """The transitions at ``indices`` as a ``Batch`` (``truncation_is_terminal``: the notebook's ``done``);
        with ``n_step`` > 1, each sums up to n rewards of its episode (``data.nstep``)."""
        if n_step == 1:
            return self.storage.take(indices).to_batch(weights, truncation_is_terminal)
        newest = (self.head - 1) % self.capacity
        transitions, horizons = n_step_transitions(self.storage, indices, (newest - indices) % self.capacity,
                                                   n_step, gamma)
        return transitions.to_batch(weights, truncation_is_terminal, horizons)

    def sample(self, rng: np.random.Generator, batch_size: int, truncation_is_terminal: bool = False,
               n_step: int = 1, gamma: float = 0.99) -> Batch:
        indices, weights = self.sample_indices(rng, batch_size)
        return self.gather(indices, weights, truncation_is_terminal, n_step, gamma)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set priorities of sampled transitions to |TD error| + eps."""
        if self.tree is None:
            return
        priorities = np.abs(np.asarray(td_errors, np.float64)) + self.priority_eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.set(indices, priorities**self.priority_exponent)

    # ----------------------------------------------------------------------------------
    def transitions(self) -> Transition:
        """The stored transitions, oldest first."""
        return Transition(*(rows[:] for rows in self.transition_rows()))

    def transition_rows(self) -> Transition:
        """The stored transitions, oldest first, as row views: sliced, each builds only the rows
        asked for (``dataset.save_replay`` writes a frame-stacked buffer a block at a time)."""
        order = self.chronological_indices()
        return Transition(*(RowView(column, order) for column in self.storage))

    def chronological_indices(self) -> np.ndarray:
        if self.size < self.capacity:
            return np.arange(self.size)
        return (np.arange(self.capacity) + self.head) % self.capacity

    def save(self, path: str | os.PathLike) -> None:
        """Write the buffer (contents, head, priorities) to a safetensors file, atomically."""
        tensors = {name: np.ascontiguousarray(array[: self.size]) for name, array in zip(Transition._fields,
                                                                                          self.storage, strict=True)
                   if not isinstance(array, StackedColumn)}
        if self.tree is not None:
            tensors["priorities"] = self.tree.get(np.arange(self.size))
        meta = {
            "capacity": self.capacity, "head": self.head, "size": self.size, "obs_dim": self.obs_dim,
            "prioritized": self.prioritized, "max_priority": self.max_priority,
        }
        if self.frames is not None:  # the frames, each once, instead of the two observation columns
            frame_tensors, frame_meta = self.frames.state(self.size)
            tensors.update(frame_tensors)
            meta.update(frame_meta)
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"saclab_buffer": json.dumps(meta)}))

    def load(self, path: str | os.PathLike) -> None:
        """Restore contents saved by ``save`` into this (same-shaped) buffer."""
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {})["saclab_buffer"])
            tensors = load_file(str(path))
        except FileNotFoundError:
            raise SaclabError(f"replay buffer file not found: {path}") from None
        except Exception as e:  # noqa: BLE001 - any parse failure is a corrupt file
            raise SaclabError(f"corrupt replay buffer file {path}: {e}") from None
        if meta.get("obs_dim") != self.obs_dim or meta.get("capacity") != self.capacity:
            raise SaclabError(
                f"replay buffer {path} has obs_dim={meta.get('obs_dim')}, capacity={meta.get('capacity')}; "
                f"expected obs_dim={self.obs_dim}, capacity={self.capacity}"
            )
        n, head = meta.get("size"), meta.get("head")
        if not (isinstance(n, int) and isinstance(head, int) and 0 <= n <= self.capacity and 0 <= head < self.capacity
                and isinstance(meta.get("max_priority"), (int, float))):
            raise SaclabError(f"corrupt replay buffer file {path}: bad size, head or max_priority")
        if (self.frames is not None) != ("frame_stack" in meta):
            raise SaclabError(f"replay buffer {path} " + ("does not store" if self.frames is not None else "stores")
                              + " frame stacks one frame at a time, unlike this buffer")
        if self.frames is not None:
            self.frames.restore(tensors, meta, n, str(path))
        for name, array in zip(Transition._fields, self.storage, strict=True):
            if isinstance(array, StackedColumn):
                continue
            saved = tensors.get(name, tensors.get(_OLD_NAMES[name]))
            if saved is None or saved.shape != (n, *array.shape[1:]):
                raise SaclabError(f"corrupt replay buffer file {path}: {name} is missing or has the wrong shape")
            if "observations" in name and saved.dtype != array.dtype:
                raise SaclabError(f"replay buffer {path} stores {name} as {saved.dtype}; expected {array.dtype}")
            array[:n] = saved
        if self.tree is not None and "priorities" in tensors and tensors["priorities"].shape != (n,):
            raise SaclabError(f"corrupt replay buffer file {path}: priorities have the wrong shape")
        self.size, self.head = n, meta["head"]
        self.max_priority = meta["max_priority"]
        if self.tree is not None and "priorities" in tensors:
            self.tree.set(np.arange(n), tensors["priorities"])


class RowView:
    """Rows ``order`` of a column (an array or a ``StackedColumn``), read only when sliced."""

    def __init__(self, column: Any, order: np.ndarray) -> None:
        self.column, self.order = column, order
        self.shape = (len(order), *column.shape[1:])
        self.dtype = column.dtype

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.column[self.order[rows]])

    def __len__(self) -> int:
        return self.shape[0]
