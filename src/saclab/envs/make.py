"""Environment creation and validation (Gymnasium; gymnax ids are handed to ``envs.gymnax_envs``).

saclab handles any environment with a ``Discrete`` action space and a flat
(1-D) ``Box`` observation space or an image one (a 3-D ``Box``: HxWxC, or a
CxHxW frame stack); anything else is refused with one line.  Image envs of two
optional extras are registered here when their id is first used: ``MinAtar/Name-v0|v1``
(``saclab[minatar]``, 10x10xC bool channels) and ``ALE/Name-v5`` (``saclab[atari]``),
which is wrapped in Gymnasium's ``AtariPreprocessing`` (4 frames skipped with a max over
the last two, 84x84 grayscale, up to 30 no-ops at reset) and ``FrameStackObservation(4)``:
uint8 observations of shape (4, 84, 84), channel first.
gymnax ids (``gymnax:Name``) are trained by the compiled loop (``runs.compiled``); made here
(collection, evaluation) they are ``envs.gymnax_envs.GymnaxGymEnv``, never Gymnasium's env of that name.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from saclab.core.types import EnvSpec, observation_dtype
from saclab.envs.gymnax_envs import GymnaxGymEnv, gymnax_episode_cap, gymnax_name, gymnax_spec, is_gymnax
from saclab.errors import SaclabError

IMAGE_EXTRAS = {"MinAtar": "minatar", "ALE": "atari"}
"""Gymnasium namespaces of image envs -> the saclab extra that installs them."""
EPISODE_CAPS = {"MinAtar": 10_000, "ALE": 27_000}
"""Episode caps (agent steps) of namespaces registered without a time limit: ALE's 108,000
frames at 4 frames a step (Machado et al. 2018); MinAtar has none of its own."""
ATARI_FRAME_SKIP = 4
ATARI_FRAME_STACK = 4
ATARI_SCREEN = 84


def _namespace(env_id: str) -> str | None:
    try:
        return gym.envs.registration.parse_env_id(env_id.rpartition(":")[2])[0]
    except gym.error.Error:
        return None


def register_image_envs(env_id: str) -> None:
    """Register the Gymnasium ids of ``env_id``'s namespace if it is an image extra's (MinAtar, ALE)
    and they are not yet; a one-line error naming the extra when its package is missing."""
    namespace = _namespace(env_id)
    if namespace not in IMAGE_EXTRAS or any(k.startswith(f"{namespace}/") for k in gym.registry):
        return
    extra = IMAGE_EXTRAS[namespace]
    try:
        if namespace == "MinAtar":
            from minatar.gym import register_envs

            register_envs()
        else:
            import ale_py  # registers the ALE/ ids on import

            gym.register_envs(ale_py)
    except ImportError as e:
        raise missing_package(env_id, e, extra) from None


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is an ALE/ id (made with saclab's Atari preprocessing)."""
    return _namespace(env_id) == "ALE"


def frame_stack(env_id: str, obs_shape: tuple[int, ...]) -> int:
    """k when ``env_id``'s observations are stacks of its last k frames (saclab's Atari envs, stack first),
    for the replay buffer to store each frame once; else 0."""
    return int(obs_shape[0]) if is_atari(env_id) and len(obs_shape) == 3 else 0


def _atari_wrappers(max_episode_steps: int | None) -> list[Callable[[gym.Env], gym.Env]]:
    """What wraps an ``ALE/`` env made with ``frameskip=1``: DQN's preprocessing, a 4-frame stack,
    and the episode cap counted in agent steps (a cap given to ``gym.make`` would count frames)."""
    wrappers: list[Callable[[gym.Env], gym.Env]] = [
        lambda env: gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=ATARI_FRAME_SKIP,
                                                    screen_size=ATARI_SCREEN, terminal_on_life_loss=False,
                                                    grayscale_obs=True, scale_obs=False),
        lambda env: gym.wrappers.FrameStackObservation(env, ATARI_FRAME_STACK),
    ]
    if max_episode_steps is not None:
        wrappers.append(lambda env: gym.wrappers.TimeLimit(env, max_episode_steps))
    return wrappers


def _make(env_id: str, **kwargs) -> gym.Env:
    _check_syntax(env_id)
    if is_gymnax(env_id):  # never through gym.make, which would make Gymnasium's env of that name
        return GymnaxGymEnv(env_id, kwargs.get("max_episode_steps"))
    register_image_envs(env_id)
    wrappers: list[Callable[[gym.Env], gym.Env]] = []
    if is_atari(env_id):
        wrappers = _atari_wrappers(kwargs.pop("max_episode_steps", None))
        kwargs["frameskip"] = 1  # AtariPreprocessing skips (and max-pools) the frames
    try:
        env = gym.make(env_id, **kwargs)
    except (gym.error.DependencyNotInstalled, ImportError) as e:  # registered, but its package is absent (Box2D)
        raise missing_package(env_id, e) from None
    except gym.error.Error as e:  # NameNotFound, VersionNotFound, NamespaceNotFound, ...
        raise SaclabError(f"unknown environment {env_id!r}: {e}") from None
    try:
        for wrap in wrappers:
            env = wrap(env)
    except gym.error.DependencyNotInstalled as e:  # AtariPreprocessing resizes with OpenCV
        env.close()
        raise missing_package(env_id, e, "atari") from None
    return env


def missing_package(env_id: str, error: Exception, extra: str | None = None) -> SaclabError:
    """The one-line error for an env whose package is not installed, naming saclab's extra for it
    (``extra``, or box2d when Gymnasium's message names Box2D) where there is one."""
    extra = extra or ("box2d" if "box2d" in str(error).lower() else None)
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if extra:
        return SaclabError(f"{env_id} needs the {extra} extra: pip install 'saclab[{extra}]' ({detail})")
    return SaclabError(f"environment {env_id!r} needs a missing package: {detail}")


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
    register_image_envs(env_id)  # imports minatar or ale_py only, never a module the file chooses
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
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) not in (1, 3):
        raise SaclabError(
            f"{env_id}: observations must be a flat (1-D) Box or an image (a 3-D Box), got {observation_space}"
        )
    return EnvSpec.of_shape(env_id, tuple(int(n) for n in observation_space.shape), int(action_space.n),
                            observation_dtype(observation_space.dtype).name)


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
    if is_gymnax(env_id):  # host-stepped, one env per sub-env (the compiled loop vmaps its own)
        max_steps = kwargs.get("max_episode_steps")
        return gym.vector.SyncVectorEnv([lambda: GymnaxGymEnv(env_id, max_steps)] * num_envs,
                                        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    register_image_envs(env_id)
    modes, wrappers = ("vector_entry_point", "sync"), None
    if is_atari(env_id):  # ALE's own vector env preprocesses differently: sync, with the same wrappers as make_env
        modes, wrappers = ("sync",), _atari_wrappers(kwargs.pop("max_episode_steps", None))
        kwargs["frameskip"] = 1
    env = None
    for mode in modes:
        try:
            env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, wrappers=wrappers, **kwargs)
            break
        except (gym.error.DependencyNotInstalled, ImportError) as e:  # Box2D; with wrappers, OpenCV (Atari)
            raise missing_package(env_id, e, "atari" if wrappers else None) from None
        except gym.error.Error as e:
            error = e
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
        register_image_envs(env_id)
        return gym.spec(env_id).max_episode_steps or EPISODE_CAPS.get(_namespace(env_id))
    except (gym.error.Error, ValueError, TypeError, SaclabError):  # malformed ids raise the latter two
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


def _minatar_game(env: gym.Env):
    """MinAtar's game object (it draws from its own ``RandomState``, not Gymnasium's ``np_random``), or None."""
    game = getattr(env.unwrapped, "game", None)
    return game if isinstance(getattr(game, "random", None), np.random.RandomState) else None


def rng_state(env: gym.Env) -> dict:
    """The env's random-generator state (JSON-able), for exact resume.  MinAtar's: its RandomState
    and its last action (sticky actions repeat it, across resets too); Atari's: Gymnasium's generator
    (the no-ops at reset) and the emulator's state with its own generator, base64 (a few kB)."""
    game = _minatar_game(env)
    if game is not None:
        state = game.random.get_state(legacy=False)  # an MT19937 state with the RandomState's gaussian cache
        state["state"]["key"] = state["state"]["key"].tolist()
        return {**state, "last_action": int(game.last_action)}
    state = env.unwrapped.np_random.bit_generator.state
    ale = _ale(env)
    if ale is not None:  # the emulator's own generator (sticky actions) lives in C++: its state, serialized
        state = {**state, "ale_state": base64.b64encode(ale.cloneState(include_rng=True).serialize()).decode()}
    return state


def _ale(env: gym.Env):
    """The ALE interface of an Atari env (its RNG and emulator state), or None."""
    ale = getattr(env.unwrapped, "ale", None)
    return ale if hasattr(ale, "cloneState") and hasattr(ale, "restoreState") else None


def set_rng_state(env: gym.Env, state: dict) -> None:
    game = _minatar_game(env)
    if game is not None:
        if "last_action" in state:  # saved by rng_state
            game.random.set_state(state)  # in place: the game's env shares this generator
            game.last_action = state["last_action"]
        else:  # a fresh stream from another generator's state (a finished run extended)
            seed = np.random.Generator(getattr(np.random, state["bit_generator"])())
            seed.bit_generator.state = state
            game.random.seed(int(seed.integers(2**32)))
        return
    generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
    generator.bit_generator.state = {k: v for k, v in state.items() if k != "ale_state"}
    env.unwrapped.np_random = generator
    ale = _ale(env)
    if ale is not None and "ale_state" in state:
        from ale_py import ALEState

        try:
            ale.restoreState(ALEState(base64.b64decode(state["ale_state"], validate=True)))
        except Exception as e:  # noqa: BLE001 - the emulator raises SystemError on bytes it cannot read
            raise SaclabError(f"corrupt checkpoint: its env_rng.ale_state cannot be restored ({e})") from None
