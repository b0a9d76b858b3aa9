"""Several seeds of one offline configuration in one process, with ``jax.vmap``.

On a GPU one seed's epoch (a ``lax.scan`` of small-MLP updates) leaves most of
the device idle; ``jax.vmap`` over the seeds turns every matmul of an update
into a batched one, so S seeds cost little more than one.  On a CPU, one
single-threaded process per seed (``saclab.launch.sweep.run_jobs``) is faster.

Each seed's run is the one ``train_offline`` gives for that seed: the same
``PRNGKey(seed)`` initial state, the same minibatch permutations (its own
``np.random.default_rng(seed)``), the same evaluations (``evaluation_seed(seed,
epoch)``) and the same run directory ``out/seed-N`` (config.json,
evaluations.csv, metrics.jsonl, checkpoint/, result.json), so
``train_offline(..., resume=True)`` can continue any of them.  The numbers
agree up to floating-point rounding: batched matmuls may round differently in
the last bits (``tests/test_vmap_seeds.py`` checks the tolerance).

Only offline training has this path: online training steps one environment per
seed on the host between updates, so it stays one process per seed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from saclab.core.agent import Batch, Learner, SACState, _update, greedy_action, init_state
from saclab.runs.checkpoint import save_checkpoint, write_json
from saclab.config import SACConfig
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.envs.evaluate import Evaluator
from saclab.runs.offline import (
    _warn,
    check_dataset,
    checkpoint_meta,
    dataset_info,
    device_batch,
    diverged_message,
    epoch_indices,
    evaluation_row,
    finish_run,
    new_counters,
    non_finite,
    notebook_epoch_indices,
    notebook_permutation,
    overestimation_message,
    q_bound,
    restore_checkpoint,
    run_config,
)
from saclab.runs.online import RunResult, _finished, evaluation_seed
from saclab.runs.runlog import CONFIG_FILE, RunLog, read_result
from saclab.runtime import enable_compilation_cache, progress_bar


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def update_epoch_seeds(
    learner: Learner, states: SACState, data: Batch, minibatch_indices: jax.Array
) -> tuple[SACState, dict]:
    """One epoch of every seed in one call: ``states`` stacked on a leading seed axis (S, ...),
    ``minibatch_indices`` (S, U, B), ``data`` shared.  Metrics come back (S, U)."""

    def epoch(state: SACState, indices: jax.Array) -> tuple[SACState, dict]:
        def body(state: SACState, idx: jax.Array) -> tuple[SACState, dict]:
            batch = jax.tree_util.tree_map(lambda x: x[idx], data)
            state, metrics = _update(learner, state, batch)
            metrics.pop("td_abs_error")
            return state, metrics

        return jax.lax.scan(body, state, indices)

    return jax.vmap(epoch)(states, minibatch_indices)


def _take(tree: Any, i: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def train_offline_vmapped(
    config: SACConfig,
    dataset: Dataset,
    seeds: Sequence[int],
    out: str | Path,
    progress: bool | None = None,
    tensorboard: bool = True,
    resume: bool = False,
) -> list[RunResult]:
    """Train ``config`` offline on ``dataset`` for every seed in ``seeds`` at once (``jax.vmap``).

    Args:
        config: hyperparameters and schedule, as for ``train_offline``.
        dataset: the transitions, shared by all seeds (on the device once).
        seeds: distinct run seeds; seed N's run goes to ``out/seed-N``.
        out: the directory of the seeds' run directories.
        progress: show a progress bar over the epochs (None: only on a terminal).
        tensorboard: also write TensorBoard events.
        resume: finished seeds (``result.json``) are returned as they are; the others continue
            from their checkpoints, which must all be at the same epoch (otherwise resume them
            one by one with ``train_offline``).

    Returns one ``RunResult`` per seed, in the order of ``seeds``.  A seed whose loss
    diverges stops being logged and checkpointed while the others go on; a ``SaclabError``
    naming it is raised once the others have finished.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise SaclabError("no seeds to train")
    if len(set(seeds)) != len(seeds):
        raise SaclabError(f"seeds must be distinct, got {seeds}")
    enable_compilation_cache()
    out = Path(out)
    run_dirs = {s: out / f"seed-{s}" for s in seeds}
    finished = {s: _finished(run_dirs[s], config, s) for s in seeds if resume and read_result(run_dirs[s])}
    active = [s for s in seeds if s not in finished]
    if not active:
        return [finished[s] for s in seeds]

    spec = check_dataset(dataset, config)
    learner = Learner.from_config(config, spec)
    n = len(dataset)
    updates_per_epoch = n // config.batch_size
    data_info = dataset_info(dataset)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in active])
    states = jax.vmap(lambda k: init_state(learner, k))(keys)
    rngs = {s: np.random.default_rng(s) for s in active}
    counters = {s: new_counters() for s in active}
    resumed: set[int] = set()
    if resume:
        template = _take(states, 0)
        restored = {s: restore_checkpoint(run_dirs[s], config, s, data_info, template, rngs[s]) for s in active}
        if any(r is not None for r in restored.values()):
            for s, r in restored.items():
                if r is not None:
                    counters[s] = r[1]
                    resumed.add(s)
            epochs = {s: counters[s]["epoch"] for s in active}
            if len(set(epochs.values())) > 1:
                where = ", ".join(f"seed {s}: epoch {e}" for s, e in epochs.items())
                raise SaclabError(f"cannot resume the seeds together: their checkpoints are at different epochs "
                                  f"({where}); resume without --vmap")
            fresh = [_take(states, i) for i in range(len(active))]
            per_seed = [restored[s][0] if restored[s] is not None else fresh[i] for i, s in enumerate(active)]
            states = jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *per_seed)

    bound = q_bound(float(dataset.rewards.max()), config.gamma)
    mc_return = float(dataset.discounted_returns(config.gamma).mean())
    data = device_batch(dataset, config.truncation_is_terminal, zero_row=config.notebook_epoch_sampler)
    fixed_indices = None
    if config.notebook_epoch_sampler:
        fixed_indices = jnp.asarray(np.stack([
            notebook_epoch_indices(notebook_permutation(s, config.buffer_size), n, config.batch_size)
            for s in active]))

    logs: dict[int, RunLog] = {}
    evaluator: Evaluator | None = None
    epoch0 = counters[active[0]]["epoch"]
    label = f"{active[0]}" if len(active) == 1 else f"{active[0]}..{active[-1]}"
    bar = progress_bar(config.epochs, epoch0, desc=f"offline vmap seeds {label}", enabled=progress)
    failed: dict[int, str] = {}
    now = time.perf_counter()
    started = {s: now - counters[s]["wall_time"] for s in active}
    try:
        for s in active:
            run_dirs[s].mkdir(parents=True, exist_ok=True)
            write_json(run_dirs[s] / CONFIG_FILE, run_config(config, s, spec, data_info))
            logs[s] = RunLog(run_dirs[s], tensorboard=tensorboard,
                             resume_step=counters[s]["updates"] if s in resumed else None)
        evaluator = Evaluator(config.env, config.offline_eval_episodes, config.max_episode_steps)
        warned: set[int] = set()
        for epoch in range(epoch0 + 1, config.epochs + 1):
            if fixed_indices is not None:
                indices = fixed_indices
            else:
                indices = jnp.asarray(np.stack([epoch_indices(rngs[s], n, config.batch_size) for s in active]))
            states, metrics = update_epoch_seeds(learner, states, data, indices)
            means_all = jax.device_get(jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=1), metrics))
            host_states = jax.device_get(states)  # for the checkpoints
            for i, s in enumerate(active):
                if s in failed:
                    continue
                means = {k: float(v[i]) for k, v in means_all.items()}
                bad = non_finite(means)
                if bad:
                    failed[s] = diverged_message(bad, epoch, counters[s]["epoch"], run_dirs[s] / "checkpoint")
                    _warn(bar, f"saclab: seed {s}: {failed[s]}")
                    continue
                counters[s]["epoch"] = epoch
                counters[s]["updates"] += updates_per_epoch
                step = counters[s]["updates"]
                actor_params = _take(states.actor_params, i)

                def greedy(observations: np.ndarray, actor_params: Any = actor_params) -> np.ndarray:
                    return np.asarray(greedy_action(learner, actor_params, observations))

                returns = evaluator.run(greedy, evaluation_seed(s, epoch))
                row = evaluation_row(step, epoch, returns, means, mc_return, bound,
                                     round(time.perf_counter() - started[s], 3))
                logs[s].log_eval(row)
                logs[s].log_metrics({"step": step, "epoch": epoch, **means})
                if row["overestimated"] and s not in warned:  # once per seed
                    _warn(bar, overestimation_message(epoch, means, bound, run_dirs[s]))
                    warned.add(s)
                counters[s]["wall_time"] = time.perf_counter() - started[s]
                save_checkpoint(run_dirs[s] / "checkpoint", _take(host_states, i),
                                checkpoint_meta(config, s, counters[s], rngs[s], data_info))
            bar.update(1)
            if len(failed) == len(active):
                break
    finally:
        bar.close()
        for log in logs.values():
            log.close()
        if evaluator is not None:
            evaluator.close()

    results: dict[int, RunResult] = dict(finished)
    for i, s in enumerate(active):
        if s in failed:
            continue
        wall = time.perf_counter() - started[s]
        summary, evaluations = finish_run(run_dirs[s], config, counters[s], n, wall, vmap_seeds=len(active))
        results[s] = RunResult(run_dirs[s], config, s, summary, evaluations, _take(states, i), learner)
    if failed:
        first = min(failed)
        others = f" ({len(failed) - 1} more seeds failed)" if len(failed) > 1 else ""
        raise SaclabError(f"seed {first}: {failed[first]}{others}")
    return [results[s] for s in seeds]


__all__ = ["train_offline_vmapped", "update_epoch_seeds"]
