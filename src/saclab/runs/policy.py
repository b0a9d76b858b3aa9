"""A trained agent loaded from a checkpoint: act, read Q-values, evaluate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from saclab.config import SACConfig
from saclab.core.agent import Learner, SACState, greedy_action, init_state, q_values, sample_action
from saclab.envs.evaluate import evaluate_policy
from saclab.envs.make import check_env_id_from_file, env_spec, episode_cap
from saclab.errors import SaclabError
from saclab.runs.checkpoint import load_meta, load_state, resolve_checkpoint


@dataclass
class Policy:
    """The learned actor and critics of one run."""

    config: SACConfig
    learner: Learner
    state: SACState
    path: Path | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, env: str | None = None) -> Policy:
        """From a run directory or a checkpoint directory.

        ``env`` is the environment the caller expects (e.g. a command line's ``--env``); without
        it the checkpoint's own env id must be a registered one with no ``module:`` prefix, so
        that a checkpoint from a stranger cannot make saclab import a module it names.
        """
        checkpoint = resolve_checkpoint(path)
        config = SACConfig.from_dict(load_meta(checkpoint)["config"])
        if env is None:
            check_env_id_from_file(config.env, f"checkpoint {checkpoint}")
        elif env != config.env:
            raise SaclabError(f"checkpoint {checkpoint} was trained on {config.env}, not {env}")
        learner = Learner.from_config(config, env_spec(config.env))
        template = init_state(learner, jax.random.PRNGKey(0))
        return cls(config, learner, load_state(checkpoint, template), checkpoint)

    def act(self, obs: np.ndarray, greedy: bool = True, key: jax.Array | None = None) -> np.ndarray:
        """Actions for a batch of observations (greedy, or sampled with ``key``)."""
        obs = np.atleast_2d(np.asarray(obs, np.float32))
        if greedy:
            return np.asarray(greedy_action(self.learner, self.state.actor_params, obs))
        if key is None:
            raise SaclabError("sampling actions needs a key")
        return np.asarray(sample_action(self.learner, self.state.actor_params, obs, key))

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """min_i Q_i(obs, .) of the learned critics, shape (B, A)."""
        obs = np.atleast_2d(np.asarray(obs, np.float32))
        return np.asarray(q_values(self.learner, self.state.critic_params, obs))

    def evaluate(self, episodes: int = 100, seed: int = 0, max_steps: int | None = None) -> np.ndarray:
        """Returns of ``episodes`` greedy episodes."""
        return evaluate_policy(self.act, self.config.env, episodes,
                               max_steps or episode_cap(self.config.env, self.config.max_episode_steps), seed)
