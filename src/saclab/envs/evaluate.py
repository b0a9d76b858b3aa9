"""Greedy evaluation of N episodes in one vector env.

All N episodes run in lockstep in a Gymnasium vector env with one batched
policy forward per step.  Gymnasium 1.x vector envs auto-reset a finished
sub-env on the *next* step, so each sub-env's first episode is counted exactly
once: its rewards are summed until it first terminates or truncates, and
everything after is ignored.  ``max_steps`` caps each episode (as the
notebook's 200-step loop does).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from saclab.core.types import observation_array
from saclab.envs.make import make_vector_env

ActionFn = Callable[[np.ndarray], np.ndarray]
"""Acting: maps a batch of observations (N, *obs_shape), float32 or uint8/bool as the env emits
them (``core.types.observation_array``), to actions (N,)."""


class Evaluator:
    """Owns one vector env of ``num_episodes`` sub-envs, reused across evaluations."""

    def __init__(self, env_id: str, num_episodes: int, max_steps: int) -> None:
        self.env: gym.vector.VectorEnv = make_vector_env(env_id, num_episodes)
        self.num_episodes = num_episodes
        self.max_steps = max_steps

    def run(self, act: ActionFn, seed: int) -> np.ndarray:
        """Returns of ``num_episodes`` episodes (float64, shape (N,))."""
        obs, _ = self.env.reset(seed=seed)
        returns = np.zeros(self.num_episodes)
        alive = np.ones(self.num_episodes, bool)
        for _ in range(self.max_steps):
            actions = np.asarray(act(observation_array(obs)))
            obs, rewards, terminated, truncated, _ = self.env.step(actions)
            returns += np.where(alive, rewards, 0.0)
            alive &= ~(terminated | truncated)
            if not alive.any():
                break
        return returns

    def close(self) -> None:
        self.env.close()


def evaluate_policy(act: ActionFn, env_id: str, num_episodes: int, max_steps: int, seed: int = 0) -> np.ndarray:
    """Returns of ``num_episodes`` episodes of ``act`` (creates and closes a vector env)."""
    evaluator = Evaluator(env_id, num_episodes, max_steps)
    try:
        return evaluator.run(act, seed)
    finally:
        evaluator.close()
