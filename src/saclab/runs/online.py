"""Online training: one Gymnasium env for learning, a vector env for evaluation.

Per environment step the device does one call (``online_updates``): update on a
fresh minibatch, then sample the next action from the updated policy.  With
``update_every`` K > 1, every K-th step does the K steps' updates in that one
call, which pays the per-call cost once; the steps in between sample from the
current policy (``sample_action_at``).
Actions are drawn with ``fold_in(key, step)``, so the random stream depends
only on the seed and the step number -- the same seed gives the same run,
and a resumed run continues exactly where the uninterrupted one would be.

Checkpoints are taken at episode ends (the env's whole state is then its RNG,
which is saved just before the reset).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from saclab.config import SACConfig
from saclab.core.agent import (
    METRIC_NAMES,
    Learner,
    greedy_action,
    init_state,
    online_updates,
    sample_action_at,
)
from saclab.data.buffer import ReplayBuffer
from saclab.envs.evaluate import Evaluator
from saclab.envs.gymnax_envs import is_gymnax
from saclab.envs.make import episode_cap, frame_stack, make_env, rng_state, set_rng_state
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.locks import directory_lock
from saclab.runs.checkpoint import BUFFER_FILE, find_checkpoint, load_meta, load_state, save_checkpoint
from saclab.runs.diagnostics import RunawayWatch, final_diagnostics
from saclab.runs.offline_records import warn
from saclab.runs.run import (
    RunResult,
    budget_spent,
    check_compatible,
    default_run_dir,
    evaluation_seed,
    finished_result,
    return_stats,
    summarize,
)
from saclab.runs.runlog import (
    CONFIG_FILE,
    REPLAY_FILE,
    MetricAccumulator,
    RunLog,
    read_evaluations,
    read_result,
    write_result,
)
from saclab.runtime import enable_compilation_cache, progress_bar
from saclab.version import __version__


def train_online(
    config: SACConfig,
    seed: int = 0,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    tensorboard: bool = True,
    save_replay: bool = True,
    on_episode_end: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train discrete SAC online on ``config.env``.

    Args:
        config: hyperparameters and schedule.
        seed: run seed (network init, actions, replay sampling, env resets).
        run_dir: where logs, checkpoints and the replay dataset go (default ``runs/online-ENV-TIME/seed-N``).
        resume: continue from ``run_dir/checkpoint`` if there is one (a finished run is returned as is).
        progress: show a progress bar (None: only on a terminal).
        tensorboard: also write TensorBoard events.
        save_replay: write the replay buffer as an offline dataset (``replay.h5``) at the end.
        on_episode_end: called with the episode's bookkeeping after each episode.

    The run directory is locked while the run trains: a second writer is refused (``saclab.locks``).
    A gymnax env (``gymnax:Name``) trains in the compiled loop (``runs.compiled``); there
    ``on_episode_end`` is called after each chunk of steps instead.
    """
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir("online", config, seed)
    with directory_lock(run_dir):
        if is_gymnax(config.env):
            from saclab.runs.compiled_train import train_compiled  # JAX-native envs: one compiled loop

            return train_compiled(config, seed, run_dir, resume, progress, tensorboard, save_replay,
                                  on_chunk_end=on_episode_end)
        return _train_online(config, seed, run_dir, resume, progress, tensorboard, save_replay, on_episode_end)


def _train_online(config: SACConfig, seed: int, run_dir: Path, resume: bool, progress: bool | None,
                  tensorboard: bool, save_replay: bool,
                  on_episode_end: Callable[[dict[str, Any]], None] | None) -> RunResult:
    enable_compilation_cache()
    cap = episode_cap(config.env, config.max_episode_steps)
    env, spec = make_env(config.env, cap)
    learner = Learner.from_config(config, spec)
    base_key = jax.random.PRNGKey(seed)
    init_key, act_key = jax.random.split(base_key)
    state = init_state(learner, init_key)
    buffer = ReplayBuffer(spec.obs_dim, config.buffer_size, config.prioritized_replay,
                          config.priority_exponent, config.importance_exponent, obs_dtype=spec.obs_dtype,
                          frame_stack=frame_stack(config.env, spec.obs_shape))
    rng = np.random.default_rng(seed)
    counters = {"step": 0, "episode": 0, "evaluations": 0, "last_checkpoint_step": 0, "wall_time": 0.0}
    pending_action: int | None = None
    accumulated: dict = {"metrics": {}, "train_returns": []}

    checkpoint_dir = run_dir / "checkpoint"
    resumed = False
    if resume:
        checkpoint = find_checkpoint(run_dir)
        if checkpoint is not None:
            meta = load_meta(checkpoint)
            check_compatible(meta, "online", config, seed, checkpoint)
            if read_result(run_dir) is not None and budget_spent(config, meta["counters"]):
                env.close()
                return finished_result(run_dir, config, seed)  # nothing left to do
            state = load_state(checkpoint, state)
            buffer.load(checkpoint / BUFFER_FILE)
            rng.bit_generator.state = meta["replay_rng"]
            counters = meta["counters"]
            pending_action = meta["pending_action"]
            accumulated = meta["accumulated"]
            env.reset(seed=seed)  # wrappers require a reset; the RNG is then restored
            if meta["env_rng"] is not None:
                set_rng_state(env, meta["env_rng"])
            else:  # extending a finished run: it ended mid-episode, so a fresh episode begins
                set_rng_state(env, np.random.default_rng([seed, counters["step"]]).bit_generator.state)
            resumed = True

    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, {"kind": "online", "seed": seed, "config": config.to_dict(),
                                       "env": vars(spec), "saclab_version": __version__})
    log = RunLog(run_dir, tensorboard=tensorboard, resume_step=counters["step"] if resumed else None)
    watch = RunawayWatch(config.initial_alpha, spec.num_actions, config.gamma, config.entropy_backup,
                         str(run_dir), read_evaluations(run_dir) if resumed else ())
    evaluator = Evaluator(config.env, config.eval_episodes, cap)
    obs, _ = env.reset() if resumed else env.reset(seed=seed)

    def greedy(observations: np.ndarray) -> np.ndarray:
        return np.asarray(greedy_action(learner, state.actor_params, observations))

    bar = progress_bar(_budget(config), counters["step"] if config.total_steps else counters["episode"],
                       desc=f"online seed {seed}", enabled=progress)
    metrics_since_eval = MetricAccumulator(METRIC_NAMES, **accumulated["metrics"])
    train_returns: list[float] = list(accumulated["train_returns"])
    episode_return, episode_length = 0.0, 0
    started = time.perf_counter() - counters["wall_time"]

    updates_per_call = config.updates_per_call

    def learn(state, step: int) -> tuple:
        """The updates due at ``step`` (one call), then the action for ``obs`` from the updated policy."""
        sampled = [buffer.sample_indices(rng, config.batch_size) for _ in range(updates_per_call)]
        # The K minibatches in one gather, viewed as (K, B, ...): no per-minibatch copies to stack.
        flat = buffer.gather(np.concatenate([indices for indices, _ in sampled]),
                             np.concatenate([weights for _, weights in sampled]),
                             config.truncation_is_terminal, config.n_step, config.gamma)
        stacked = jax.tree_util.tree_map(
            lambda column: column.reshape(updates_per_call, config.batch_size, *column.shape[1:]), flat)
        state, metrics_since_eval.sums, next_action, td_errors = online_updates(
            learner, state, stacked, obs, act_key, step, metrics_since_eval.sums)
        if buffer.prioritized:  # after the call's K updates (as SB3's PER within one train call)
            for (indices, _), errors in zip(sampled, np.asarray(td_errors), strict=True):
                buffer.update_priorities(indices, errors)
        metrics_since_eval.count += updates_per_call
        return state, next_action

    def check_finite() -> None:
        if not metrics_since_eval.finite():
            kept = (f"last good checkpoint: step {counters['last_checkpoint_step']} in {checkpoint_dir}"
                    if counters["last_checkpoint_step"] else "no checkpoint was written yet")
            raise SaclabError(f"training diverged: non-finite loss before step {counters['step']} ({kept}); "
                              "try smaller learning rates")

    def evaluate() -> None:
        check_finite()
        step = counters["step"]
        returns = evaluator.run(greedy, evaluation_seed(seed, counters["evaluations"]))
        counters["evaluations"] += 1
        means = metrics_since_eval.means()
        r_max = float(np.max(buffer.storage.rewards[:len(buffer)]))
        row = {"step": step, "episode": counters["episode"], **return_stats(returns),
               "train_return": float(np.mean(train_returns)) if train_returns else None,  # blank: none ended
               **watch.columns(step, means, r_max), "time_s": round(time.perf_counter() - started, 3)}
        log.log_eval(row)
        for message in watch.warnings(row):
            warn(bar, message)
        if means:
            log.log_metrics({"step": step, "episode": counters["episode"], **means})
            bar.set_postfix(eval=f"{row['return_mean']:.1f}", alpha=f"{means['alpha']:.3g}",
                            q=f"{means['q_data']:.1f}/{row['q_bound']:.0f}")
        else:
            bar.set_postfix(eval=f"{row['return_mean']:.1f}")
        metrics_since_eval.reset()
        train_returns.clear()

    def checkpoint(env_rng: dict | None) -> None:
        check_finite()  # never save a diverged state over a good one
        counters["last_checkpoint_step"] = counters["step"]
        counters["wall_time"] = time.perf_counter() - started
        meta = {"kind": "online", "seed": seed, "config": config.to_dict(), "counters": counters,
                "replay_rng": rng.bit_generator.state, "env_rng": env_rng,
                "pending_action": pending_action if env_rng is not None else None,
                "accumulated": {"metrics": metrics_since_eval.state_dict(), "train_returns": train_returns},
                "saclab_version": __version__}
        save_checkpoint(checkpoint_dir, state, meta, lambda d: buffer.save(d / BUFFER_FILE))

    try:
        while not budget_spent(config, counters):
            step = counters["step"]
            if pending_action is None:
                action = int(sample_action_at(learner, state.actor_params, obs, act_key, step))
            else:
                action = pending_action
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(obs, action, reward, next_obs, terminated, truncated)
            episode_return += float(reward)
            episode_length += 1
            counters["step"] = step = step + 1
            episode_over = terminated or truncated
            env_rng_before_reset = rng_state(env) if episode_over else None
            obs = env.reset()[0] if episode_over else next_obs

            pending_action = None
            if len(buffer) >= config.learning_starts and step % config.update_every == 0:
                state, next_action = learn(state, step)
                pending_action = int(next_action)  # the action for obs, from the updated policy

            if not episode_over:
                continue
            counters["episode"] += 1
            train_returns.append(episode_return)
            info = {"step": step, "episode": counters["episode"], "return": episode_return, "length": episode_length}
            episode_return, episode_length = 0.0, 0
            bar.update(step - bar.n if config.total_steps else 1)

            if counters["episode"] % config.eval_every_episodes == 0:
                evaluate()
            since_checkpoint = step - counters["last_checkpoint_step"]
            if config.checkpoint_every_steps and since_checkpoint >= config.checkpoint_every_steps:
                checkpoint(env_rng_before_reset)
            if on_episode_end is not None:
                on_episode_end(info)
        # The budget is spent: a last evaluation (unless one just ran) and a final checkpoint.
        if len(metrics_since_eval) or train_returns or not counters["evaluations"]:
            evaluate()
        checkpoint(None)  # env_rng None: the run may have stopped mid-episode
    finally:
        bar.close()
        log.close()
        evaluator.close()
        env.close()

    wall = time.perf_counter() - started
    if save_replay:
        from saclab.data.dataset import save_replay

        save_replay(buffer, config, seed, "online replay buffer", run_dir / REPLAY_FILE)
    evaluations = read_evaluations(run_dir)
    summary = summarize(evaluations, steps=counters["step"], episodes=counters["episode"],
                        wall_time_s=round(wall, 2), steps_per_s=round(counters["step"] / max(wall, 1e-9), 1),
                        **final_diagnostics(evaluations))
    write_result(run_dir, summary)
    return RunResult(run_dir, config, seed, summary, evaluations, state, learner)


def _budget(config: SACConfig) -> int:
    return config.total_steps if config.total_steps else config.total_episodes


def check_resumable(run_dir: str | Path, config: SACConfig, seed: int) -> None:
    """Raise a one-line error if ``run_dir`` holds a checkpoint that ``config``/``seed`` cannot continue."""
    if is_gymnax(config.env):
        from saclab.runs.compiled import check_resumable as check_compiled

        return check_compiled(run_dir, config, seed)
    checkpoint = find_checkpoint(run_dir)
    if checkpoint is not None:  # otherwise the run starts fresh
        check_compatible(load_meta(checkpoint), "online", config, seed, checkpoint)
