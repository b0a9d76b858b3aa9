"""Frame stacks stored one frame at a time: the replay buffer's observations for Atari.

An Atari observation is a stack of the last k frames (k x 84 x 84 uint8), and the
next observation shares k - 1 of them, as does the next transition's observation:
stored whole, a transition holds 2k frames of which one is new.  ``FrameRing``
keeps each frame once, in the order the env produced them: an episode's first
observation writes its k frames, then every transition writes the one new frame
of its next observation.  Within an episode these are consecutive, so transition i,
whose newest frame is number g_i, has

    observation       = frames g_i - k     ... g_i - 1
    next observation  = frames g_i - k + 1 ... g_i

(frame numbers count every frame ever written; the ring holds the latest ones).
The ring grows when the frames the oldest stored transition needs would be
overwritten (many short episodes), so no stored stack is ever lost.
"""

from __future__ import annotations

import numpy as np

from saclab.errors import SaclabError


class FrameRing:
    """The frames of the stacked observations of ``capacity`` replay slots."""

    def __init__(self, capacity: int, stack: int, frame_size: int, dtype: np.dtype) -> None:
        self.stack, self.frame_size = stack, frame_size
        self.frames = np.zeros((capacity + 4 * stack, frame_size), dtype)
        self.written = 0  # frames written so far; frame g lives at row g % len(frames)
        self.newest = np.zeros(capacity, np.int64)  # per slot: the number of its next observation's newest frame

    def put(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, continues: bool, oldest: int | None) -> None:
        """Store slot ``slot``'s two stacks (flat).  ``continues``: ``obs`` is the previous slot's next
        observation (its frames are stored); ``oldest``: the oldest slot that stays stored, if any."""
        k, size = self.stack, self.frame_size
        obs_frames, next_frames = obs.reshape(k, size), next_obs.reshape(k, size)
        if not np.array_equal(next_frames[:-1], obs_frames[1:]):
            raise SaclabError("frame-stack storage needs each next observation to be the observation shifted by "
                              "one frame (Gymnasium's FrameStackObservation)")
        new = next_frames[-1:] if continues else np.concatenate([obs_frames, next_frames[-1:]])
        needed_from = self.written - k if continues else self.written  # this slot's own older frames
        if oldest is not None:
            needed_from = min(needed_from, int(self.newest[oldest]) - k)
        if self.written + len(new) - needed_from > len(self.frames):
            self._grow(needed_from, self.written + len(new) - needed_from)
        rows = (self.written + np.arange(len(new))) % len(self.frames)
        self.frames[rows] = new
        self.written += len(new)
        self.newest[slot] = self.written - 1

    def stacks(self, slots: np.ndarray, offset: int) -> np.ndarray:
        """The stacks of ``slots``, flat (len(slots), k * frame_size): offset 0 the observations, 1 the next."""
        slots = np.asarray(slots)
        numbers = self.newest[slots][..., None] - self.stack + offset + np.arange(self.stack)
        return self.frames[numbers % len(self.frames)].reshape(*slots.shape, self.stack * self.frame_size)

    def last_next_observation(self, slot: int) -> np.ndarray:
        return self.stacks(np.array([slot]), 1)[0]

    def _plausible(self, ring_rows: int, written: int) -> bool:
        """A saved ring is at least as large as a fresh one, and grows only by doubling or to what is needed."""
        return len(self.frames) <= ring_rows <= 2 * max(len(self.frames), written) + len(self.frames)

    def _grow(self, first: int, needed: int) -> None:
        rows = max(2 * len(self.frames), needed)
        grown = np.zeros((rows, self.frame_size), self.frames.dtype)
        numbers = np.arange(max(first, 0), self.written)
        grown[numbers % rows] = self.frames[numbers % len(self.frames)]
        self.frames = grown

    # ---------------------------------------------------------------- checkpoints
    def state(self, size: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Tensors and metadata that ``restore`` takes back (the slots ``[:size]``).  Until the ring
        wraps only the rows written so far are saved (a 500k Atari ring is 3.5 GB, mostly empty early)."""
        rows = min(self.written, len(self.frames))
        return ({"frames": self.frames[:rows], "frame_numbers": self.newest[:size]},
                {"frame_stack": self.stack, "frames_written": self.written, "frame_rows": len(self.frames)})

    def restore(self, tensors: dict[str, np.ndarray], meta: dict, size: int, source: str) -> None:
        frames, numbers = tensors.get("frames"), tensors.get("frame_numbers")
        ring_rows = meta.get("frame_rows", None if frames is None else len(frames))  # files before frame_rows: whole
        if (frames is None or numbers is None or frames.ndim != 2 or frames.shape[1] != self.frame_size
                or frames.dtype != self.frames.dtype or numbers.shape != (size,)
                or meta.get("frame_stack") != self.stack or not isinstance(meta.get("frames_written"), int)
                or not isinstance(ring_rows, int) or not self._plausible(ring_rows, meta["frames_written"])
                or len(frames) not in (min(meta["frames_written"], ring_rows), ring_rows)):
            raise SaclabError(f"corrupt replay buffer file {source}: its frame-stack storage does not fit this buffer")
        self.frames = np.zeros((ring_rows, self.frame_size), self.frames.dtype)
        self.frames[:len(frames)] = frames
        self.written = meta["frames_written"]
        self.newest[:size] = numbers


class StackedColumn:
    """The observation (offset 0) or next-observation (offset 1) column of a ``FrameRing``, indexed
    like the array it stands for (what ``Transition.take`` and ``data.nstep`` do)."""

    def __init__(self, ring: FrameRing, capacity: int, offset: int) -> None:
        self.ring, self.offset = ring, offset
        self.shape = (capacity, ring.stack * ring.frame_size)
        self.dtype = ring.frames.dtype

    def __getitem__(self, slots: np.ndarray | slice) -> np.ndarray:
        if isinstance(slots, slice):
            slots = np.arange(self.shape[0])[slots]
        return self.ring.stacks(np.asarray(slots), self.offset)

    def __len__(self) -> int:
        return self.shape[0]
