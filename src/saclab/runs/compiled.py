"""The compiled online loop for gymnax envs: env step, replay, update and next action in one ``lax.scan``.

One call of ``run_chunk`` runs ``length`` environment steps on the device
(PureJaxRL style): per step, an action from the current policy, a gymnax step
(auto-reset), the transition written to a device ring buffer (``data.device_buffer``),
then ``updates_per_step`` SAC updates (``core.agent.scan_updates``) once the buffer
holds ``learning_starts`` transitions.  Episode returns are tracked inside the
scan.  The host only acts between chunks: greedy evaluation (vmapped over
episodes in the gymnax env), logging, checkpoints.  Every random draw is
``fold_in(key, step)``, and the whole loop state is one pytree saved at chunk
boundaries, so a resumed run is the uninterrupted one bit for bit.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from saclab.config import SACConfig
from saclab.core.agent import METRIC_NAMES, Learner, SACState, _sample_action, init_state, scan_updates
from saclab.data import device_buffer
from saclab.data.device_buffer import DeviceReplay
from saclab.envs.gymnax_envs import make_gymnax
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.runs.checkpoint import (
    arrays_to_pytree,
    find_checkpoint,
    load_meta,
    load_state,
    pytree_to_arrays,
    save_checkpoint,
)
from saclab.runs.diagnostics import RunawayWatch, final_diagnostics
from saclab.runs.offline_records import warn
from saclab.runs.run import (
    BUDGET_FIELDS,
    RunResult,
    budget_spent,
    evaluation_seed,
    finished_result,
    return_stats,
    summarize,
)
from saclab.runs.runlog import CONFIG_FILE, REPLAY_FILE, RunLog, read_evaluations, read_result, write_result
from saclab.runtime import enable_compilation_cache, progress_bar
from saclab.version import __version__

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


def init_loop(learner: Learner, env: Any, env_params: Any, config: SACConfig, seed: int) -> LoopState:
    """A fresh loop: new networks, an empty buffer, the first observation."""
    init_key, run_key, reset_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    obs, env_state = env.reset(reset_key, env_params)
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


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3), donate_argnums=5)
def run_chunk(learner: Learner, settings: LoopSettings, env: Any, length: int, env_params: Any,
              loop: LoopState) -> tuple[LoopState, jax.Array]:
    """``length`` env steps, each followed by its updates, as one scan.  Returns the loop and the
    returns of the episodes that ended, per step (NaN where none ended): shape (length,)."""

    def body(loop: LoopState, _: None) -> tuple[LoopState, jax.Array]:
        act_key, env_key, sample_key = jax.random.split(jax.random.fold_in(loop.key, loop.step), 3)
        loop, finished = act_and_step(learner, env, env_params, loop, act_key, env_key)
        return learn(learner, settings, loop, sample_key), finished

    return jax.lax.scan(body, loop, None, length=length)


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


def train_compiled(config: SACConfig, seed: int, run_dir: Path, resume: bool = False, progress: bool | None = None,
                   tensorboard: bool = True, save_replay: bool = True, chunk_steps: int = CHUNK_STEPS,
                   on_chunk_end: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Train discrete SAC online on a gymnax env (``gymnax:Name``) with the compiled loop.

    Writes the run files of a Gymnasium run (config.json, evaluations.csv, metrics.jsonl,
    checkpoint/, result.json, replay.h5).  Evaluation runs at the first
    chunk end after every ``eval_every_episodes`` episodes; checkpoints at chunk ends.  An episode
    budget stops at the first chunk end after it is reached.  ``on_chunk_end(info)`` is called
    after each chunk (its evaluation and checkpoint done).  Call through ``runs.online.train_online``,
    which locks the run directory.
    """
    check_supported(config)
    enable_compilation_cache()
    env, env_params, spec = make_gymnax(config.env, config.max_episode_steps)
    cap = int(env_params.max_steps_in_episode)
    learner = Learner.from_config(config, spec)
    settings = LoopSettings(config.batch_size, config.learning_starts, config.updates_per_step,
                            config.truncation_is_terminal)
    loop = init_loop(learner, env, env_params, config, seed)
    counters = {"step": 0, "episode": 0, "evaluations": 0, "evaluated_blocks": 0, "last_checkpoint_step": 0,
                "wall_time": 0.0}
    train_returns: list[float] = []
    checkpoint_dir = run_dir / "checkpoint"
    resumed = False
    if resume and (checkpoint := find_checkpoint(run_dir)) is not None:
        meta = load_meta(checkpoint)
        _check_resumable(meta, config, seed, chunk_steps, checkpoint)
        if read_result(run_dir) is not None and budget_spent(config, meta["counters"]):
            return finished_result(run_dir, config, seed)
        loop = _load_loop(checkpoint, loop)
        counters, train_returns, resumed = meta["counters"], list(meta["train_returns"]), True

    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, {"kind": "online", "loop": "compiled", "seed": seed, "config": config.to_dict(),
                                       "env": vars(spec), "saclab_version": __version__})
    log = RunLog(run_dir, tensorboard=tensorboard, resume_step=counters["step"] if resumed else None)
    watch = RunawayWatch(config.initial_alpha, spec.num_actions, config.gamma, config.entropy_backup,
                         str(run_dir), read_evaluations(run_dir) if resumed else ())
    budget = config.total_steps or config.total_episodes
    bar = progress_bar(budget, counters["step"] if config.total_steps else counters["episode"],
                       desc=f"compiled seed {seed}", enabled=progress)
    started = time.perf_counter() - counters["wall_time"]

    def evaluate() -> None:
        nonlocal loop
        sums, count = np.asarray(loop.metric_sums, np.float64), int(loop.metric_count)
        if not np.all(np.isfinite(sums)):
            raise SaclabError(f"training diverged: non-finite loss before step {counters['step']}; "
                              "try smaller learning rates")
        key = jax.random.PRNGKey(evaluation_seed(seed, counters["evaluations"]))
        returns = np.asarray(evaluate_greedy(learner, env, config.eval_episodes, cap, env_params,
                                             loop.agent.actor_params, key), np.float64)
        counters["evaluations"] += 1
        means = {name: float(v) / count for name, v in zip(METRIC_NAMES, sums, strict=True)} if count else {}
        row = {"step": counters["step"], "episode": counters["episode"], **return_stats(returns),
               "train_return": float(np.mean(train_returns)) if train_returns else None,
               **watch.columns(counters["step"], means, float(device_buffer.max_reward(loop.replay))),
               "time_s": round(time.perf_counter() - started, 3)}
        log.log_eval(row)
        for message in watch.warnings(row):
            warn(bar, message)
        if means:
            log.log_metrics({"step": counters["step"], "episode": counters["episode"], **means})
        bar.set_postfix(eval=f"{row['return_mean']:.1f}")
        loop = loop.replace(metric_sums=jnp.zeros_like(loop.metric_sums), metric_count=jnp.zeros((), jnp.int32))
        train_returns.clear()

    def checkpoint() -> None:
        counters["last_checkpoint_step"] = counters["step"]
        counters["wall_time"] = time.perf_counter() - started
        meta = {"kind": "compiled", "seed": seed, "config": config.to_dict(), "chunk_steps": chunk_steps,
                "counters": counters, "train_returns": train_returns, "saclab_version": __version__}
        rest = pytree_to_arrays(loop.replace(agent=None))
        save_checkpoint(checkpoint_dir, loop.agent, meta, lambda d: save_file(rest, str(d / LOOP_FILE)))

    try:
        while not budget_spent(config, counters):
            length = min(chunk_steps, config.total_steps - counters["step"]) if config.total_steps else chunk_steps
            loop, finished = run_chunk(learner, settings, env, length, env_params, loop)
            ended = np.asarray(finished, np.float64)
            ended = ended[~np.isnan(ended)]
            train_returns.extend(ended.tolist())
            counters["step"] += length
            counters["episode"] += len(ended)
            bar.update(length if config.total_steps else len(ended))
            blocks = counters["episode"] // config.eval_every_episodes
            if blocks > counters["evaluated_blocks"]:
                counters["evaluated_blocks"] = blocks
                evaluate()
            since = counters["step"] - counters["last_checkpoint_step"]
            due = config.checkpoint_every_steps and since >= config.checkpoint_every_steps
            if due and not budget_spent(config, counters):
                checkpoint()
            if on_chunk_end is not None:
                on_chunk_end({"step": counters["step"], "episode": counters["episode"]})
        if int(loop.metric_count) or train_returns or not counters["evaluations"]:
            evaluate()
        checkpoint()
    finally:
        bar.close()
        log.close()

    wall = time.perf_counter() - started
    if save_replay:
        from saclab.data.dataset import Dataset

        view = device_buffer.HostView(loop.replay)
        Dataset.from_buffer(view, config, seed, source="compiled online replay buffer").save(run_dir / REPLAY_FILE)
    evaluations = read_evaluations(run_dir)
    summary = summarize(evaluations, steps=counters["step"], episodes=counters["episode"],
                        wall_time_s=round(wall, 2), steps_per_s=round(counters["step"] / max(wall, 1e-9), 1),
                        loop="compiled", **final_diagnostics(evaluations))
    write_result(run_dir, summary)
    return RunResult(run_dir, config, seed, summary, evaluations, loop.agent, learner)


def _load_loop(checkpoint: Path, template: LoopState) -> LoopState:
    """The loop state saved in ``checkpoint``: the agent from state.safetensors, the rest from loop.safetensors."""
    agent = load_state(checkpoint, template.agent)
    try:
        with safe_open(str(checkpoint / LOOP_FILE), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise SaclabError(f"corrupt checkpoint {checkpoint}: {LOOP_FILE}: {e}".splitlines()[0]) from None
    rest = arrays_to_pytree(arrays, template.replace(agent=None), source=f"checkpoint {checkpoint}")
    return jax.device_put(rest.replace(agent=agent))


def _check_resumable(meta: dict, config: SACConfig, seed: int, chunk_steps: int, checkpoint: Path) -> None:
    """Refuse a checkpoint this run cannot continue exactly (only the budget may change)."""
    if meta.get("kind") != "compiled":
        raise SaclabError(f"cannot resume {checkpoint}: it is a {str(meta.get('kind', 'unknown'))[:40]} run, "
                          "not a compiled (gymnax) one")
    counters = meta.get("counters")
    names = ("step", "episode", "evaluations", "evaluated_blocks", "last_checkpoint_step")
    if not (isinstance(counters, dict) and all(isinstance(counters.get(n), int) and counters[n] >= 0 for n in names)
            and isinstance(counters.get("wall_time"), (int, float)) and isinstance(meta.get("train_returns"), list)):
        raise SaclabError(f"corrupt checkpoint {checkpoint}: meta.json lacks valid counters or train_returns")
    saved = SACConfig.from_dict(meta["config"]).to_dict()
    differing = [k for k, v in config.to_dict().items() if k not in BUDGET_FIELDS["online"] and saved[k] != v]
    if differing:
        raise SaclabError(f"cannot resume {checkpoint}: config differs in {', '.join(differing)}")
    if meta.get("seed") != seed:
        raise SaclabError(f"cannot resume {checkpoint}: it was trained with seed {meta.get('seed')}, not {seed}")
    if meta.get("chunk_steps") != chunk_steps:
        raise SaclabError(f"cannot resume {checkpoint}: it ran {meta.get('chunk_steps')} steps per chunk, "
                          f"not {chunk_steps}")


def check_resumable(run_dir: str | Path, config: SACConfig, seed: int) -> None:
    """Raise a one-line error if ``run_dir`` holds a checkpoint that ``config``/``seed`` cannot continue."""
    checkpoint = find_checkpoint(run_dir)
    if checkpoint is not None:
        _check_resumable(load_meta(checkpoint), config, seed, CHUNK_STEPS, checkpoint)
