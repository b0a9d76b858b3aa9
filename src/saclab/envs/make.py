"""Environment creation and validation (Gymnasium; gymnax ids are handed to ``envs.gymnax_envs``).

saclab handles any environment with a ``Discrete`` action space and a flat
(1-D) ``Box`` observation space; anything else is refused with one line.
gymnax ids (``gymnax:Name``) are trained by the compiled loop (``runs.compiled``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from saclab.core.types import EnvSpec
from saclab.envs.gymnax_envs import gymnax_episode_cap, gymnax_name, gymnax_spec, is_gymnax
from saclab.errors import SaclabError


def _make(env_id: str, **kwargs) -> gym.Env:
    _check_syntax(env_id)
    _refuse_gymnax(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as e:  # NameNotFound, VersionNotFound, NamespaceNotFound, ...
        raise SaclabError(f"unknown environment {env_id!r}: {e}") from None
    except ImportError as e:
        raise SaclabError(f"environment {env_id!r} needs a missing package: {e}") from None


def _refuse_gymnax(env_id: str) -> None:
    # Gymnasium would import gymnax and make its own env of that name: a silent swap.
    if is_gymnax(env_id):
        raise SaclabError(f"{env_id} is a gymnax env: it trains in the compiled loop (saclab train --env {env_id}); "
                          "Gymnasium vector envs cannot run it")


def _check_syntax(env_id: object) -> None:
    """Refuse what Gymnasium cannot parse (it raises ValueError or TypeError for some, e.g. ``a:b:c``)."""
    if not isinstance(env_id, str) or not env_id:
        raise SaclabError(f"an environment id must be a non-empty string, got {env_id!r}")
    module, _, name = env_id.rpartition(":")
    if env_id.count(":") > 1 or (":" in env_id and not (module and name)):
        raise SaclabError(f"malformed environment id {env_id!r} (expected [module:][namespace/]Name-vN)")
    try:
        gym.envs.registration.parse_env_id(name)
    except gym.error.Error:
        raise SaclabError(f"malformed environment id {env_id!r} (expected [module:][namespace/]Name-vN)") from None


def check_env_id_from_file(env_id: object, source: str) -> str:
    """An env id read from a file (a dataset, a checkpoint), checked before anything makes it.

    Gymnasium imports ``module`` to make ``module:Env``, so an id with a module prefix would let
    the file choose code for saclab to run: it is refused (only an id given on the command line,
    or passed by a program, may carry one).  The id must be well formed and registered.
    """
    _check_syntax(env_id)
    assert isinstance(env_id, str)
    if is_gymnax(env_id):  # imports gymnax only, never a module the file chooses
        gymnax_name(env_id)
        return env_id
    if ":" in env_id:
        module = env_id.split(":")[0]
        raise SaclabError(f"{source} names the environment {env_id!r}, which would import the module {module!r}; "
                          f"saclab imports no code a file names (pass --env {env_id} if you trust it)")
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        raise SaclabError(f"{source} names an unknown environment {env_id!r}: {e}") from None
    return env_id


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space) -> EnvSpec:
    """An ``EnvSpec`` for these spaces, or a clear error if saclab cannot handle them."""
    if not isinstance(action_space, gym.spaces.Discrete):
        kind = "continuous" if isinstance(action_space, gym.spaces.Box) else type(action_space).__name__
        raise SaclabError(
            f"{env_id}: discrete SAC needs a Discrete action space, got a {kind} one ({action_space})"
        )
    if int(action_space.start) != 0:
        raise SaclabError(f"{env_id}: Discrete action spaces must start at 0, got start={action_space.start}")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise SaclabError(
            f"{env_id}: observations must be a flat (1-D) Box, got {observation_space}"
        )
    return EnvSpec(env_id, int(observation_space.shape[0]), int(action_space.n))


def env_spec(env_id: str) -> EnvSpec:
    """Validate ``env_id`` and return its sizes (creates and closes one env)."""
    if is_gymnax(env_id):
        return gymnax_spec(env_id)
    env = _make(env_id)
    try:
        return check_spaces(env_id, env.observation_space, env.action_space)
    finally:
        env.close()


def make_env(env_id: str, max_episode_steps: int | None = None) -> tuple[gym.Env, EnvSpec]:
    """One training environment with the episode cap as a time-limit truncation."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = _make(env_id, **kwargs)
    spec = check_spaces(env_id, env.observation_space, env.action_space)
    return env, spec


def make_vector_env(env_id: str, num_envs: int, max_episode_steps: int | None = None) -> gym.vector.VectorEnv:
    """The one place vector envs are made (evaluation, collection): the env's own fast vector
    implementation where it has one (CartPole), else a synchronous one; its spaces checked.
    ``max_episode_steps`` truncates episodes (None: the env's registered limit)."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    _check_syntax(env_id)
    _refuse_gymnax(env_id)
    env = None
    for mode in ("vector_entry_point", "sync"):
        try:
            env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
            break
        except gym.error.Error as e:
            error = e
        except ImportError as e:
            raise SaclabError(f"environment {env_id!r} needs a missing package: {e}") from None
    if env is None:
        raise SaclabError(f"unknown environment {env_id!r}: {error}")
    try:
        check_spaces(env_id, env.single_observation_space, env.single_action_space)
    except SaclabError:
        env.close()
        raise
    return env


def registered_episode_limit(env_id: str) -> int | None:
    """The episode cap ``env_id`` is registered with (None: none, or an unknown id)."""
    if is_gymnax(env_id):
        try:
            return gymnax_episode_cap(env_id, 0)
        except SaclabError:
            return None
    try:
        return gym.spec(env_id).max_episode_steps
    except (gym.error.Error, ValueError, TypeError):  # malformed ids raise the latter two
        return None


def episode_cap(env_id: str, max_episode_steps: int) -> int:
    """The episode cap a run uses: ``max_episode_steps``, or with 0 the env's registered limit."""
    if max_episode_steps > 0:
        return max_episode_steps
    if is_gymnax(env_id):
        return gymnax_episode_cap(env_id, max_episode_steps)
    limit = registered_episode_limit(env_id)
    if not limit:
        raise SaclabError(f"{env_id} has no registered time limit: set max_episode_steps")
    return int(limit)


def rng_state(env: gym.Env) -> dict:
    """The env's random-generator state (JSON-able), for exact resume."""
    return env.unwrapped.np_random.bit_generator.state


def set_rng_state(env: gym.Env, state: dict) -> None:
    generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
    generator.bit_generator.state = state
    env.unwrapped.np_random = generator
