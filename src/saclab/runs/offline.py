"""Offline training: epochs over a fixed ``Dataset``, no environment interaction.

The whole dataset is put on the device once.  An epoch is a permutation of
the transitions cut into ``N // batch_size`` minibatches (the remainder is
dropped, so every transition is used at most once per epoch) and runs as a
single jitted ``lax.scan`` (``agent.update_epoch``): no Python work per
minibatch and one host sync per epoch, when the epoch's metric means are read.
``train_offline_vmapped`` runs several seeds through the same loop with the
epoch vmapped over them (``epochs.update_epoch_seeds``), one run directory each.

``config.algo`` "bc" trains behaviour cloning (``core.bc``) through the same loop.
Without a simulator (``config.env`` ""), the networks' sizes come from the dataset.

After each epoch the offline metrics (``core.offline_metrics``: TD error, value of
the initial states, action agreement, entropy, CQL gap, the data's actions'
negative log-likelihood) are computed on the held-out episodes (``runs.held_out``;
the training data without a split).  With a simulator the greedy policy is also
evaluated on ``offline_eval_episodes`` fresh episodes, and SAC's rows carry value
diagnostics that show extrapolation error as it happens:

* ``q_data``    mean min(Q1, Q2)(s, a) on the dataset's actions (epoch mean);
* ``q_greedy``  mean min(Q1, Q2)(s, argmax pi(.|s)) on the dataset's states (epoch mean);
* ``mc_return`` mean discounted Monte Carlo return of the dataset's transitions;
* ``q_bound``   the largest value any return can have, r_max / (1 - gamma)
  (r_max when r_max < 0), r_max the dataset's largest reward;
* ``overestimated``  q_data or q_greedy above q_bound (also a warning line on stderr).

The bound is on returns; soft Q-values also carry the entropy bonus, at most
gamma * alpha * log|A| / (1 - gamma) on top, so a small excess early in
training (alpha near 1) is expected and a large or growing one is the
overestimation offline SAC is known for (and CQL prevents).

A checkpoint is written after every epoch (parameters, optimiser states and
the permutation generator's state, no buffer), so ``resume=True`` continues
at the next epoch and yields exactly the run that would have happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from saclab.config import SACConfig
from saclab.core.agent import Learner, greedy_action, init_state, update_epoch
from saclab.core.bc import bc_update_epoch
from saclab.core.losses import value_bound
from saclab.core.offline_metrics import offline_metrics
from saclab.data.dataset import Dataset
from saclab.envs.evaluate import Evaluator
from saclab.envs.make import episode_cap
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.runs.checkpoint import save_checkpoint
from saclab.runs.epochs import (
    bc_update_epoch_seeds,
    check_dataset,
    device_batch,
    epoch_indices,
    notebook_epoch_indices,
    notebook_permutation,
    reward_scaled,
    update_epoch_seeds,
)
from saclab.runs.held_out import metric_data, split_episodes, validation_fraction
from saclab.runs.offline_records import (
    KIND,
    OFFLINE_METRICS,
    checkpoint_meta,
    dataset_info,
    diverged_message,
    evaluation_row,
    finish_run,
    new_counters,
    non_finite,
    overestimation_message,
    restore_checkpoint,
    run_config,
    warn,
)
from saclab.runs.run import RunResult, default_run_dir, evaluation_seed, finished_result, stack_seeds, take_seed
from saclab.runs.runlog import CONFIG_FILE, RunLog, read_result
from saclab.runtime import enable_compilation_cache, progress_bar


def train_offline(
    config: SACConfig,
    dataset: Dataset,
    seed: int = 0,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    tensorboard: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train discrete SAC (CQL-SAC with ``config.cql_weight > 0``; behaviour cloning with
    ``config.algo`` "bc") offline on ``dataset``.

    Args:
        config: hyperparameters; ``epochs``, ``batch_size``, ``offline_eval_episodes``,
            ``max_episode_steps`` (evaluation cap), ``truncation_is_terminal``,
            ``notebook_epoch_sampler`` and ``validation_fraction`` set the schedule;
            ``env`` "" trains without a simulator (no evaluation episodes).
        dataset: the transitions (``Dataset.load(path)``); checked against ``config.env``.
        seed: run seed (network init and the epochs' permutations).
        run_dir: where logs and the checkpoint go (default ``runs/offline-ENV-TIME/seed-N``).
        resume: continue from ``run_dir/checkpoint`` if there is one (a finished run is returned as is).
        progress: show a progress bar (None: only on a terminal).
        tensorboard: also write TensorBoard events.
        on_epoch_end: called with the epoch's evaluation row after its checkpoint is written.
    """
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(KIND, config, seed)
    return _train(config, dataset, {seed: run_dir}, False, resume, progress, tensorboard, on_epoch_end)[0]


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

    Each seed's run is the one ``train_offline`` gives for that seed (same initial state,
    permutations, evaluations and run directory ``out/seed-N``, so ``train_offline(...,
    resume=True)`` can continue it), up to floating-point rounding of the batched matmuls.
    The GPU path: on a CPU one single-threaded process per seed (``saclab.launch``) is faster.

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
    return _train(config, dataset, {s: Path(out) / f"seed-{s}" for s in seeds}, True, resume, progress,
                  tensorboard)


def _train(config: SACConfig, dataset: Dataset, run_dirs: dict[int, Path], vmapped: bool, resume: bool,
           progress: bool | None, tensorboard: bool,
           on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> list[RunResult]:
    """The offline loop, for one seed (``vmapped`` False) or several seeds vmapped together."""
    enable_compilation_cache()
    seeds = list(run_dirs)
    finished = {s: finished_result(run_dirs[s], config, s) for s in seeds
                if resume and read_result(run_dirs[s]) is not None}
    active = [s for s in seeds if s not in finished]
    if not active:
        return [finished[s] for s in seeds]

    spec = check_dataset(dataset, config)
    learner = Learner.from_config(config, spec)
    data_info = dataset_info(dataset)
    dataset = reward_scaled(dataset)
    fraction = validation_fraction(config, int(dataset.episode_starts.sum()))
    if vmapped and fraction > 0:
        raise SaclabError("vmapped seeds share one training set, but each seed holds out its own episodes: "
                          "pass --validation-fraction 0, or train without --vmap")
    dataset, held = split_episodes(dataset, fraction, active[0])
    measured = metric_data(held or dataset, config, "validation" if held is not None else "train")
    held_info = {"validation_fraction": fraction, "split": measured.split, "train_transitions": len(dataset),
                 "metric_transitions": measured.transitions, "metric_episodes": measured.episodes}
    check_dataset(dataset, config, spec)  # the training split still fills a minibatch
    n = len(dataset)
    updates_per_epoch = n // config.batch_size
    states = [init_state(learner, jax.random.PRNGKey(s)) for s in active]
    rngs = {s: np.random.default_rng(s) for s in active}
    counters = {s: new_counters() for s in active}
    resumed: set[int] = set()
    if resume:
        for i, s in enumerate(active):
            restored = restore_checkpoint(run_dirs[s], config, s, data_info, states[i], rngs[s])
            if restored is not None:
                states[i], counters[s] = restored
                resumed.add(s)
        if len({counters[s]["epoch"] for s in active}) > 1:
            where = ", ".join(f"seed {s}: epoch {counters[s]['epoch']}" for s in active)
            raise SaclabError(f"cannot resume the seeds together: their checkpoints are at different epochs "
                              f"({where}); resume without --vmap")

    bound = value_bound(float(dataset.rewards.max()), config.gamma)
    mc_return = float(dataset.discounted_returns(config.gamma).mean())
    data = device_batch(dataset, config.truncation_is_terminal, config.notebook_epoch_sampler, config.n_step,
                        config.gamma)
    fixed = {s: notebook_epoch_indices(notebook_permutation(s, config.buffer_size), n, config.batch_size)
             for s in active} if config.notebook_epoch_sampler else None
    if config.algo == "bc":
        run_epoch = bc_update_epoch_seeds if vmapped else bc_update_epoch
    else:
        run_epoch = update_epoch_seeds if vmapped else update_epoch
    with_critics = config.algo != "bc"

    def measure(state: Any) -> dict[str, Any]:
        return offline_metrics(learner, state, measured.batch, measured.weights, measured.starts, with_critics)

    if vmapped:
        state, measure_all = stack_seeds(states), jax.vmap(measure)
    else:
        (state,), measure_all = states, measure

    def epoch_inputs() -> jax.Array:
        indices = [fixed[s] if fixed is not None else epoch_indices(rngs[s], n, config.batch_size) for s in active]
        return jnp.asarray(np.stack(indices) if vmapped else indices[0])

    logs: dict[int, RunLog] = {}
    evaluator: Evaluator | None = None
    epoch0 = counters[active[0]]["epoch"]
    label = f"{active[0]}" if len(active) == 1 else f"{active[0]}..{active[-1]}"
    bar = progress_bar(config.epochs, epoch0, desc=f"offline {'vmap ' if vmapped else ''}seed {label}",
                       enabled=progress)
    failed: dict[int, str] = {}
    warned: set[int] = set()
    now = time.perf_counter()
    started = {s: now - counters[s]["wall_time"] for s in active}
    try:
        for s in active:
            run_dirs[s].mkdir(parents=True, exist_ok=True)
            write_json(run_dirs[s] / CONFIG_FILE, run_config(config, s, spec, data_info, held_info))
            logs[s] = RunLog(run_dirs[s], tensorboard=tensorboard,
                             resume_step=counters[s]["updates"] if s in resumed else None)
        if config.env:
            evaluator = Evaluator(config.env, config.offline_eval_episodes,
                                  episode_cap(config.env, config.max_episode_steps))
        for epoch in range(epoch0 + 1, config.epochs + 1):
            state, metrics = run_epoch(learner, state, data, epoch_inputs())
            means_all = jax.device_get(jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=-1), metrics))  # 1 sync
            offline_all = jax.device_get(measure_all(state))
            host_state = jax.device_get(state) if vmapped else state  # for the checkpoints
            for i, s in enumerate(active):
                if s in failed:
                    continue
                means = {k: float(v[i] if vmapped else v) for k, v in means_all.items()}
                bad = non_finite(means)
                if bad:
                    failed[s] = diverged_message(bad, epoch, counters[s]["epoch"], run_dirs[s] / "checkpoint")
                    if len(active) > 1:
                        warn(bar, f"saclab: seed {s}: {failed[s]}")
                    continue
                counters[s]["epoch"] = epoch
                counters[s]["updates"] += updates_per_epoch
                step = counters[s]["updates"]
                actor_params = take_seed(state.actor_params, i) if vmapped else state.actor_params

                def greedy(observations: np.ndarray, actor_params: Any = actor_params) -> np.ndarray:
                    return np.asarray(greedy_action(learner, actor_params, observations))

                returns = evaluator.run(greedy, evaluation_seed(s, epoch)) if evaluator is not None else None
                offline = {k: float(offline_all[k][i] if vmapped else offline_all[k]) for k in OFFLINE_METRICS
                           if k in offline_all}
                row = evaluation_row(step, epoch, returns, means, mc_return, bound,
                                     round(time.perf_counter() - started[s], 3), offline)
                logs[s].log_eval(row)
                logs[s].log_metrics({"step": step, "epoch": epoch, **means})
                if row.get("overestimated") and s not in warned:  # once per run; every epoch's flag is in the log
                    warn(bar, overestimation_message(epoch, means, bound, run_dirs[s]))
                    warned.add(s)
                counters[s]["wall_time"] = time.perf_counter() - started[s]
                save_checkpoint(run_dirs[s] / "checkpoint", take_seed(host_state, i) if vmapped else state,
                                checkpoint_meta(config, s, counters[s], rngs[s], data_info, spec))
                if not vmapped:
                    shown = {"eval": row.get("return_mean"), "q": means.get("q_data"),
                             "td": None if evaluator is not None else offline.get("td_error"),
                             "agree": offline["action_agreement"]}
                    bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items() if v is not None})
                if on_epoch_end is not None:
                    on_epoch_end(row)
            bar.update(1)
            if len(failed) == len(active):
                break
    finally:
        bar.close()
        for log in logs.values():
            log.close()
        if evaluator is not None:
            evaluator.close()

    if failed and not vmapped:
        raise SaclabError(failed[seeds[0]])
    results: dict[int, RunResult] = dict(finished)
    for i, s in enumerate(active):
        if s not in failed:
            wall = time.perf_counter() - started[s]
            extra = {"vmap_seeds": len(active)} if vmapped else {}
            summary, evaluations = finish_run(run_dirs[s], config, counters[s], n, wall, **extra)
            results[s] = RunResult(run_dirs[s], config, s, summary, evaluations,
                                   take_seed(state, i) if vmapped else state, learner)
    if failed:
        first = min(failed)
        others = f" ({len(failed) - 1} more seeds failed)" if len(failed) > 1 else ""
        raise SaclabError(f"seed {first}: {failed[first]}{others}")
    return [results[s] for s in seeds]


__all__ = ["train_offline", "train_offline_vmapped"]
