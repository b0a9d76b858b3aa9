"""The compiled online loop for gymnax envs: env step, replay, update and next action in one ``lax.scan``.

One call of ``run_chunk`` runs ``length`` environment steps on the device
(PureJaxRL style): per step, an action from the current policy, a gymnax step
(auto-reset), the transition written to a device ring buffer (``data.device_buffer``),
then ``updates_per_step`` SAC updates (``core.agent.scan_updates``) once the buffer
holds ``learning_starts`` transitions.  Episode returns are tracked inside the
scan.  The host only acts between chunks (``runs.compiled_train``): greedy
evaluation (vmapped over episodes in the gymnax env), logging, checkpoints.
``run_chunk_seeds`` runs S seeds' loops as one vmapped program.  Every random draw is
``fold_in(key, step)``, and the whole loop state is one pytree saved at chunk
boundaries, so a resumed run is the uninterrupted one bit for bit.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
from safetensors import safe_open

from saclab.config import SACConfig
from saclab.core.agent import METRIC_NAMES, Learner, SACState, _sample_action, init_state, scan_updates
from saclab.data import device_buffer
from saclab.data.device_buffer import DeviceReplay
from saclab.errors import SaclabError
from saclab.runs.checkpoint import arrays_to_pytree, find_checkpoint, load_meta, load_state
from saclab.runs.run import check_compatible

CHUNK_STEPS = 1000
"""Environment steps per compiled call (the host logs and checkpoints between calls)."""
LOOP_FILE = "loop.safetensors"


class LoopSettings(NamedTuple):
    """The loop's static hyperparameters (hashable: a jit static argument)."""

    batch_size: int
    learning_starts: int
    updates_per_step: int
    truncation_is_terminal: bool


@flax.struct.dataclass
class LoopState:
    """Everything the compiled loop carries from step to step (checkpointed whole)."""

    agent: SACState
    replay: DeviceReplay
    env_state: Any
    obs: jax.Array  # the observation the next action is for
    episode_return: jax.Array  # () float32, of the episode under way
    step: jax.Array  # () int32, env steps taken
    metric_sums: jax.Array  # (len(METRIC_NAMES),) float32 since the last evaluation
    metric_count: jax.Array  # () int32
    key: jax.Array  # the run's key; step t draws with fold_in(key, t)


def init_loop(learner: Learner, env: Any, env_params: Any, config: SACConfig, seed: int,
              obs_dtype: str) -> LoopState:
    """A fresh loop: new networks, an empty buffer of ``obs_dtype`` observations (the env's spec,
    ``envs.gymnax_envs.make_gymnax``: bool for MinAtar), the first observation."""
    init_key, run_key, reset_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    obs, env_state = env.reset(reset_key, env_params)
    obs = obs.astype(obs_dtype)  # the steps cast to the same dtype
    replay = device_buffer.empty_replay(config.buffer_size, obs.shape, str(obs.dtype))
    return LoopState(agent=init_state(learner, init_key), replay=replay, env_state=env_state, obs=obs,
                     episode_return=jnp.zeros((), jnp.float32), step=jnp.zeros((), jnp.int32),
                     metric_sums=jnp.zeros(len(METRIC_NAMES), jnp.float32), metric_count=jnp.zeros((), jnp.int32),
                     key=run_key)


def act_and_step(learner: Learner, env: Any, env_params: Any, loop: LoopState, act_key: jax.Array,
                 env_key: jax.Array) -> tuple[LoopState, jax.Array]:
    """One env step: sample an action for ``loop.obs``, step (auto-reset), store the transition.
    Returns the loop and the finished episode's return (NaN when no episode ended)."""
    action = _sample_action(learner, loop.agent.actor_params, loop.obs[None], act_key)[0]
    next_obs, env_state, reward, terminated, truncated, info = env.step(env_key, loop.env_state, action, env_params)
    reward = jnp.asarray(reward, jnp.float32)
    replay = device_buffer.add(loop.replay, loop.obs, action, reward, info["final_observation"], terminated, truncated)
    episode_return = loop.episode_return + reward
    done = jnp.logical_or(terminated, truncated)
    loop = loop.replace(replay=replay, env_state=env_state, obs=next_obs.astype(loop.obs.dtype),
                        episode_return=jnp.where(done, 0.0, episode_return), step=loop.step + 1)
    return loop, jnp.where(done, episode_return, jnp.nan)


def learn(learner: Learner, settings: LoopSettings, loop: LoopState, sample_key: jax.Array) -> LoopState:
    """``updates_per_step`` SAC updates on uniform minibatches (none before ``learning_starts``)."""
    # Minibatches are gathered outside the cond: a buffer passed through it is copied every step.
    batches = jax.vmap(lambda k: device_buffer.sample(loop.replay, k, settings.batch_size,
                                                      settings.truncation_is_terminal)
                       )(jax.random.split(sample_key, settings.updates_per_step))

    def updates(carry: tuple) -> tuple:
        agent, sums, count = carry
        agent, sums, _ = scan_updates(learner, agent, sums, batches)
        return agent, sums, count + settings.updates_per_step

    carry = (loop.agent, loop.metric_sums, loop.metric_count)
    agent, sums, count = jax.lax.cond(loop.replay.size >= settings.learning_starts, updates, lambda c: c, carry)
    return loop.replace(agent=agent, metric_sums=sums, metric_count=count)


def chunk(learner: Learner, settings: LoopSettings, env: Any, length: int, env_params: Any,
          loop: LoopState) -> tuple[LoopState, jax.Array]:
    """``length`` env steps, each followed by its updates, as one scan.  Returns the loop and the
    returns of the episodes that ended, per step (NaN where none ended): shape (length,)."""

    def body(loop: LoopState, _: None) -> tuple[LoopState, jax.Array]:
        act_key, env_key, sample_key = jax.random.split(jax.random.fold_in(loop.key, loop.step), 3)
        loop, finished = act_and_step(learner, env, env_params, loop, act_key, env_key)
        return learn(learner, settings, loop, sample_key), finished

    return jax.lax.scan(body, loop, None, length=length)


run_chunk = functools.partial(jax.jit, static_argnums=(0, 1, 2, 3), donate_argnums=5)(chunk)
"""``chunk`` compiled: one seed's loop."""


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3), donate_argnums=5)
def run_chunk_seeds(learner: Learner, settings: LoopSettings, env: Any, length: int, env_params: Any,
                    loops: LoopState) -> tuple[LoopState, jax.Array]:
    """``chunk`` for S seeds' loops stacked on a leading axis, in one program (``jax.vmap``):
    returns the loops and the finished episodes' returns, shape (S, length)."""
    return jax.vmap(lambda loop: chunk(learner, settings, env, length, env_params, loop))(loops)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def evaluate_greedy(learner: Learner, env: Any, num_episodes: int, max_steps: int, env_params: Any,
                    actor_params: dict, key: jax.Array) -> jax.Array:
    """Returns of ``num_episodes`` greedy episodes run side by side (vmapped gymnax env); each
    counts until its first end or ``max_steps``; the loop stops when all have ended."""
    keys = jax.random.split(key, num_episodes)
    obs, states = jax.vmap(env.reset, (0, None))(keys, env_params)
    step = jax.vmap(env.step, (0, 0, 0, None))

    def running(carry: tuple) -> jax.Array:
        t, _, _, _, alive = carry
        return (t < max_steps) & jnp.any(alive)

    def body(carry: tuple) -> tuple:
        t, obs, states, returns, alive = carry
        actions = jnp.argmax(learner.actor.apply({"params": actor_params}, obs), axis=-1)
        step_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, t)
        obs, states, rewards, terminated, truncated, _ = step(step_keys, states, actions, env_params)
        returns = returns + jnp.where(alive, rewards, 0.0)
        return t + 1, obs, states, returns, alive & ~(terminated | truncated)

    init = (jnp.zeros((), jnp.int32), obs, states, jnp.zeros(num_episodes, jnp.float32), jnp.ones(num_episodes, bool))
    return jax.lax.while_loop(running, body, init)[3]


def check_supported(config: SACConfig) -> None:
    """Refuse the options the compiled loop does not have (yet), with one line."""
    if config.prioritized_replay:
        raise SaclabError("prioritized_replay is not available for gymnax envs (the compiled loop samples uniformly)")
    if config.n_step != 1:
        raise SaclabError("n_step > 1 is not available for gymnax envs (the compiled loop stores one-step rewards)")
    if config.update_every != 1:
        raise SaclabError("update_every > 1 is for Gymnasium envs (the compiled loop has no per-call cost to spread)")


def load_loop(checkpoint: Path, template: LoopState) -> LoopState:
    """The loop state saved in ``checkpoint``: the agent from state.safetensors, the rest from loop.safetensors."""
    agent = load_state(checkpoint, template.agent)
    try:
        with safe_open(str(checkpoint / LOOP_FILE), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise SaclabError(f"corrupt checkpoint {checkpoint}: {LOOP_FILE}: {e}".splitlines()[0]) from None
    rest = arrays_to_pytree(arrays, template.replace(agent=None), source=f"checkpoint {checkpoint}")
    return jax.device_put(rest.replace(agent=agent))


def check_checkpoint(meta: dict, config: SACConfig, seed: int, chunk_steps: int, checkpoint: Path) -> None:
    """Refuse a checkpoint this run cannot continue exactly (only the budget may change, and the
    chunk length, which sets where evaluations and checkpoints fall, must be the same)."""
    check_compatible(meta, "compiled", config, seed, checkpoint)
    if meta["chunk_steps"] != chunk_steps:
        raise SaclabError(f"cannot resume {checkpoint}: it ran {meta['chunk_steps']} steps per chunk, "
                          f"not {chunk_steps}")


def check_resumable(run_dir: str | Path, config: SACConfig, seed: int) -> None:
    """Raise a one-line error if ``run_dir`` holds a checkpoint that ``config``/``seed`` cannot continue."""
    checkpoint = find_checkpoint(run_dir)
    if checkpoint is not None:
        check_checkpoint(load_meta(checkpoint), config, seed, CHUNK_STEPS, checkpoint)
