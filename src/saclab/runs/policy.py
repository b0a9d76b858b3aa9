"""A trained agent loaded from a checkpoint: act, read Q-values, evaluate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from saclab.config import SACConfig
from saclab.core.agent import Learner, SACState, greedy_action, init_state, q_values, sample_action
from saclab.core.types import EnvSpec, observation_array
from saclab.envs.evaluate import evaluate_policy
from saclab.envs.gymnax_envs import is_gymnax
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
    obs_dtype: str = "float32"
    """How the env emits observations (float32, uint8 or bool): ``core.types.EnvSpec.obs_dtype``."""

    @classmethod
    def load(cls, path: str | os.PathLike, env: str | None = None) -> Policy:
        """From a run directory or a checkpoint directory.

        ``env`` is the environment the caller expects (e.g. a command line's ``--env``); without
        it the checkpoint's own env id must be a registered one with no ``module:`` prefix, so
        that a checkpoint from a stranger cannot make saclab import a module it names.
        """
        checkpoint = resolve_checkpoint(path)
        meta = load_meta(checkpoint)
        config = SACConfig.from_dict(meta["config"])
        if not config.env:  # trained without a simulator: the sizes are the dataset's
            spec = saved_spec(meta, checkpoint)
            if env is not None:  # to be evaluated in one: its spaces must fit
                spec_of_env = env_spec(env)
                fits = ((spec_of_env.obs_dim, spec_of_env.num_actions) == (spec.obs_dim, spec.num_actions)
                        and (len(spec.obs_shape) == 1 or spec_of_env.obs_shape == spec.obs_shape))
                if not fits:
                    raise SaclabError(f"checkpoint {checkpoint} has obs_dim={spec.obs_dim}, {spec.num_actions} "
                                      f"actions; {env} has obs_dim={spec_of_env.obs_dim}, "
                                      f"{spec_of_env.num_actions} actions")
                config, spec = config.replace(env=env), spec_of_env
        elif env is None:
            spec = env_spec(check_env_id_from_file(config.env, f"checkpoint {checkpoint}"))
        elif env != config.env:
            raise SaclabError(f"checkpoint {checkpoint} was trained on {config.env}, not {env}")
        else:
            spec = env_spec(config.env)
        learner = Learner.from_config(config, spec)
        template = init_state(learner, jax.random.PRNGKey(0))
        return cls(config, learner, load_state(checkpoint, template), checkpoint, spec.obs_dtype)

    def act(self, obs: np.ndarray, greedy: bool = True, key: jax.Array | None = None) -> np.ndarray:
        """Actions for a batch of observations (greedy, or sampled with ``key``)."""
        obs = np.atleast_2d(observation_array(obs))  # uint8/bool stay: the network scales them
        if greedy:
            return np.asarray(greedy_action(self.learner, self.state.actor_params, obs))
        if key is None:
            raise SaclabError("sampling actions needs a key")
        return np.asarray(sample_action(self.learner, self.state.actor_params, obs, key))

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """min_i Q_i(obs, .) of the learned critics, shape (B, A)."""
        obs = np.atleast_2d(observation_array(obs))  # uint8/bool stay: the network scales them
        return np.asarray(q_values(self.learner, self.state.critic_params, obs))

    def evaluate(self, episodes: int = 100, seed: int = 0, max_steps: int | None = None) -> np.ndarray:
        """Returns of ``episodes`` greedy episodes."""
        if not self.config.env:
            raise SaclabError(f"{self.path} was trained without a simulator: load it with an env to evaluate it "
                              "there (Policy.load(path, env=ID); saclab evaluate RUN --env ID)")
        if is_gymnax(self.config.env):  # the compiled loop's evaluation: episodes vmapped in the gymnax env
            from saclab.envs.gymnax_envs import make_gymnax
            from saclab.runs.compiled import evaluate_greedy

            env, env_params, _ = make_gymnax(self.config.env, self.config.max_episode_steps)
            cap = max_steps or int(env_params.max_steps_in_episode)
            returns = evaluate_greedy(self.learner, env, episodes, cap, env_params, self.state.actor_params,
                                      jax.random.PRNGKey(seed))
            return np.asarray(returns, np.float64)
        return evaluate_policy(self.act, self.config.env, episodes,
                               max_steps or episode_cap(self.config.env, self.config.max_episode_steps), seed)


def saved_spec(meta: dict, checkpoint: Path) -> EnvSpec:
    """The networks' sizes an offline run without a simulator saved in its checkpoint's meta."""
    spec = meta.get("spec")
    sizes = [spec.get(k) if isinstance(spec, dict) else None for k in ("obs_dim", "num_actions")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes):
        raise SaclabError(f"corrupt checkpoint {checkpoint}: a run without an env needs spec.obs_dim and "
                          "spec.num_actions in meta.json")
    shape, dtype = spec.get("obs_shape"), spec.get("obs_dtype", "float32")  # absent before image observations
    if shape is None:
        return EnvSpec("", *sizes)
    if (not isinstance(shape, list) or not all(isinstance(n, int) and n >= 1 for n in shape)
            or int(np.prod(shape)) != sizes[0] or dtype not in ("float32", "uint8", "bool")):
        raise SaclabError(f"corrupt checkpoint {checkpoint}: spec.obs_shape or spec.obs_dtype in meta.json "
                          "does not fit spec.obs_dim")
    return EnvSpec.of_shape("", tuple(shape), sizes[1], dtype)
