"""n-step returns gathered from a stream of stored transitions (NumPy only).

For a start t and up to n consecutive transitions of the same episode, the
critic's target becomes (Sutton & Barto 7.1; Rainbow, Hessel et al. 2018)

    y_t = sum_{k<m} gamma^k r_{t+k}  +  gamma^m (1 - terminated_{t+m-1}) V(s_{t+m})

with m = n, or fewer when the stored stream stops first: the episode ends
(terminated or truncated at t+k: m = k+1), the next transition begins another
episode, or t+k is the newest transition stored.  A truncation ends the sum
and still bootstraps from its next observation; a termination does not.

The sum uses the behaviour policy's rewards without importance correction, as
Rainbow and the DQN family do: a small bias for faster credit assignment.
"""

from __future__ import annotations

import numpy as np

from saclab.core.types import Transition


def n_step_transitions(
    stream: Transition,
    starts: np.ndarray,
    remaining: np.ndarray,
    n: int,
    gamma: float,
    episode_starts: np.ndarray | None = None,
) -> tuple[Transition, np.ndarray]:
    """The n-step transitions beginning at ``starts`` and how many rewards each sums.

    Args:
        stream: stored transitions in time order; index ``(start + k) % len(stream)`` is k steps after ``start``
            (a circular replay buffer's storage, or a dataset's transitions).
        starts: (B,) start indices.
        remaining: (B,) how many later transitions the stream holds after each start (0 for the newest).
        n: the largest number of rewards to sum (>= 1).
        gamma: discount factor.
        episode_starts: (len(stream),) bool, where an episode begins (a dataset's); the replay buffer of one
            env needs none, its episodes end with a termination or truncation.

    Returns:
        ``Transition`` with the start's observation and action, the discounted reward sum, and the last
        summed step's next observation, termination and truncation; and the horizons m (B,) in [1, n].
    """
    starts = np.asarray(starts, np.int64)
    offsets = np.arange(n)
    chain = (starts[:, None] + offsets) % len(stream.actions)  # (B, n)
    # Step k is summed iff it is stored, no earlier step ended, and (k >= 1) it does not begin an episode.
    stops = stream.terminations[chain] | stream.truncations[chain]
    stopped_before = (np.cumsum(stops, axis=1) - stops) > 0
    if episode_starts is not None:
        begins = episode_starts[chain] & (offsets > 0)
        stopped_before |= np.cumsum(begins, axis=1) > 0
    summed = ~stopped_before & (offsets[None, :] <= np.asarray(remaining)[:, None])
    horizons = summed.sum(axis=1)  # >= 1: step 0 is always summed
    discounts = np.power(gamma, offsets, dtype=np.float64)
    rewards = np.sum(stream.rewards[chain] * discounts * summed, axis=1).astype(np.float32)
    last = chain[np.arange(len(starts)), horizons - 1]
    transitions = Transition(stream.observations[starts], stream.actions[starts], rewards,
                             stream.next_observations[last], stream.terminations[last], stream.truncations[last])
    return transitions, horizons
