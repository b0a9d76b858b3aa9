"""JAX-native environments (gymnax): ids ``gymnax:Name``, their creation, sizes and episode caps.

gymnax envs are pure functions of (key, state, action, params), so the compiled
online loop (``runs.compiled``) steps them inside its ``lax.scan``.  The tools
that step envs from the host one call at a time (collection, the evaluator of
offline runs) get them behind Gymnasium's API (``GymnaxGymEnv``).  gymnax is an
optional extra (``pip install saclab[jax-envs]``).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from saclab.core.types import EnvSpec
from saclab.errors import SaclabError

GYMNAX_PREFIX = "gymnax:"
INSTALL_HINT = 'gymnax envs need the jax-envs extra: pip install -e ".[jax-envs]"'


def is_gymnax(env_id: object) -> bool:
    """Whether ``env_id`` names a gymnax env (``gymnax:Name``)."""
    return isinstance(env_id, str) and env_id.startswith(GYMNAX_PREFIX)


def _gymnax() -> Any:
    try:
        import gymnax  # an optional extra
    except ImportError as e:
        raise SaclabError(f"{INSTALL_HINT} ({e})") from None
    return gymnax


def gymnax_name(env_id: str) -> str:
    """The gymnax name of ``gymnax:Name``, checked against gymnax's registry."""
    name = env_id[len(GYMNAX_PREFIX):]
    registered = _gymnax().registered_envs
    if name not in registered:
        raise SaclabError(f"unknown gymnax environment {name!r} (e.g. CartPole-v1, Acrobot-v1, MountainCar-v0, "
                          "Breakout-MinAtar, Asterix-MinAtar, Freeway-MinAtar, Seaquest-MinAtar, "
                          "SpaceInvaders-MinAtar)")
    return name


def make_gymnax(env_id: str, max_episode_steps: int = 0) -> tuple[Any, Any, EnvSpec]:
    """(env, env_params, spec) of ``gymnax:Name``; ``max_episode_steps`` > 0 replaces the env's own cap
    (a time-limit truncation, which bootstraps).  Discrete actions only."""
    gymnax = _gymnax()
    name = gymnax_name(env_id)
    try:
        env, params = gymnax.make(name)
    except (NotImplementedError, ValueError) as e:
        raise SaclabError(f"gymnax cannot make {name}: {e}") from None
    if max_episode_steps > 0:
        params = params.replace(max_steps_in_episode=max_episode_steps)
    actions = env.action_space(params)
    if not isinstance(actions, gymnax.environments.spaces.Discrete):
        raise SaclabError(f"{env_id}: discrete SAC needs a Discrete action space, got {type(actions).__name__}")
    observations = env.observation_space(params)
    # MinAtar's channels come as 0/1 floats: kept as bool (a quarter of the replay's memory; the
    # networks read bool as 0/1, so the numbers are those of float32 storage).
    dtype = "bool" if name.endswith("-MinAtar") else "uint8" if "uint8" in str(observations.dtype) else "float32"
    spec = EnvSpec.of_shape(env_id, tuple(int(n) for n in observations.shape), int(actions.n), dtype)
    return env, params, spec


def gymnax_spec(env_id: str) -> EnvSpec:
    """The sizes of ``gymnax:Name`` (validated)."""
    return make_gymnax(env_id)[2]


def gymnax_episode_cap(env_id: str, max_episode_steps: int) -> int:
    """The episode cap a run uses: ``max_episode_steps``, or with 0 the env's own."""
    if max_episode_steps > 0:
        return max_episode_steps
    env, params, _ = make_gymnax(env_id)
    return int(params.max_steps_in_episode)


class GymnaxGymEnv(gym.Env):
    """``gymnax:Name`` behind Gymnasium's ``Env`` API: one jitted gymnax step per ``step``.

    gymnax resets inside its step; an episode's last step here returns the true final
    observation (gymnax's ``final_observation``) with its terminated/truncated flags, and the
    caller resets, as with any Gymnasium env.  ``reset(seed=s)`` restarts the env's key from
    ``s``, so a seeded run repeats exactly.  The episode cap is gymnax's own (a truncation),
    or ``max_episode_steps``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env_id: str, max_episode_steps: int | None = None) -> None:
        self._env, self._params, self.spec_sizes = _shared_gymnax(env_id, max_episode_steps or 0)
        dtype = np.dtype(self.spec_sizes.obs_dtype)
        bounds = (0, 255) if dtype == np.uint8 else (0, 1) if dtype == np.bool_ else (-np.inf, np.inf)
        self.observation_space = gym.spaces.Box(*bounds, shape=tuple(self.spec_sizes.obs_shape), dtype=dtype)
        self.action_space = gym.spaces.Discrete(self.spec_sizes.num_actions)
        self._key = jax.random.PRNGKey(0)
        self._state: Any = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._env.reset(key, self._params)
        return self._observation(obs), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._state is None:
            raise SaclabError("step() before reset() on a gymnax env")
        self._key, key = jax.random.split(self._key)
        _, self._state, reward, terminated, truncated, info = self._env.step(key, self._state, int(action),
                                                                               self._params)
        return self._observation(info["final_observation"]), float(reward), bool(terminated), bool(truncated), {}

    def _observation(self, obs: Any) -> np.ndarray:
        return np.asarray(obs, self.observation_space.dtype)


@functools.lru_cache(maxsize=8)
def _shared_gymnax(env_id: str, max_episode_steps: int) -> tuple[Any, Any, EnvSpec]:
    # One env object per id: gymnax jits step and reset with the env as a static argument, so the
    # sub-envs of a vector env share one compilation.
    return make_gymnax(env_id, max_episode_steps)
