"""Offline training: epochs over a fixed ``Dataset``, no environment interaction.

The whole dataset is put on the device once.  An epoch is a permutation of
the transitions cut into ``N // batch_size`` minibatches (the remainder is
dropped, so every transition is used at most once per epoch) and runs as a
single jitted ``lax.scan`` (``agent.update_epoch``): no Python work per
minibatch and one host sync per epoch, when the epoch's metric means are read.

After each epoch the greedy policy is evaluated on ``offline_eval_episodes``
fresh episodes and the row is logged with value diagnostics that show
extrapolation error as it happens:

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

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from saclab.version import __version__
from saclab.core.agent import Batch, Learner, batch_from_numpy, greedy_action, init_state, update_epoch
from saclab.runs.checkpoint import find_checkpoint, load_meta, load_state, save_checkpoint, write_json
from saclab.config import SACConfig
from saclab.data.dataset import Dataset
from saclab.core.types import EnvSpec
from saclab.envs.make import env_spec
from saclab.errors import SaclabError
from saclab.envs.evaluate import Evaluator
from saclab.runs.online import RunResult, _finished, _return_stats, default_run_dir, evaluation_seed, summarize
from saclab.runs.runlog import CONFIG_FILE, RunLog, read_evaluations, read_result, write_result
from saclab.runtime import enable_compilation_cache, progress_bar

KIND = "offline"


# ---------------------------------------------------------------------------------------
# Minibatch indices of one epoch
# ---------------------------------------------------------------------------------------
def epoch_indices(rng: np.random.Generator, num_transitions: int, batch_size: int) -> np.ndarray:
    """A fresh permutation of ``range(num_transitions)`` cut into ``num_transitions // batch_size``
    minibatches, shape (U, batch_size) int32: every transition at most once (the remainder,
    fewer than ``batch_size`` transitions, is left out of this epoch)."""
    updates = num_transitions // batch_size
    return rng.permutation(num_transitions)[: updates * batch_size].reshape(updates, batch_size).astype(np.int32)


def notebook_permutation(seed: int, capacity: int) -> np.ndarray:
    """The notebook buffer's ``mirror_index``: one permutation of the whole capacity,
    drawn once (when the buffer is created) and reused by every epoch."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x0B00C])).permutation(capacity)


def notebook_epoch_indices(permutation: np.ndarray, num_transitions: int, batch_size: int) -> np.ndarray:
    """The notebook's offline sampler, reproduced only to reproduce the notebook (its bug).

    The notebook walks ``mirror_index[start:start + batch_size]`` for
    ``start = 0, batch_size, ...`` over ``N // batch_size`` minibatches, where
    ``mirror_index`` permutes the buffer's whole *capacity* (500k), not its N
    filled slots.  So most indices point at never-written, all-zero slots
    (zero state, action 0, reward 0, not done), and most real transitions are
    never seen.  Here every index >= N is mapped to row N, which ``train_offline``
    fills with zeros; the (U, batch_size) result is the same in every epoch.
    """
    updates = num_transitions // batch_size
    if len(permutation) < updates * batch_size:
        raise SaclabError(f"notebook_epoch_sampler needs buffer_size >= the dataset's {num_transitions} "
                          f"transitions, got {len(permutation)}")
    idx = permutation[: updates * batch_size].reshape(updates, batch_size)
    return np.where(idx < num_transitions, idx, num_transitions).astype(np.int32)


# ---------------------------------------------------------------------------------------
# Data on the device
# ---------------------------------------------------------------------------------------
def device_batch(dataset: Dataset, truncation_is_terminal: bool = False, zero_row: bool = False) -> Batch:
    """The whole dataset as one device-resident ``Batch`` (weights all ones).

    ``terminated`` is the dataset's terminations (or terminations | truncations
    with ``truncation_is_terminal``); ``zero_row`` appends one all-zero
    transition (the notebook sampler's empty slot).
    """
    terminated = dataset.terminations | dataset.truncations if truncation_is_terminal else dataset.terminations
    arrays = [dataset.observations, dataset.actions, dataset.rewards, dataset.next_observations, terminated]
    if zero_row:
        arrays = [np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)]) for a in arrays]
    return jax.device_put(batch_from_numpy(*arrays))


def check_dataset(dataset: Dataset, config: SACConfig, spec: EnvSpec | None = None) -> EnvSpec:
    """Refuse a dataset that does not fit ``config.env`` or holds less than one minibatch."""
    if dataset.env_id and dataset.env_id != config.env:
        raise SaclabError(f"dataset was collected on {dataset.env_id} but the config's env is {config.env} "
                          f"(pass --env {dataset.env_id})")
    spec = spec or env_spec(config.env)
    dataset.check_env(spec.obs_dim, spec.num_actions, config.env)
    if len(dataset) < config.batch_size:
        raise SaclabError(f"dataset has {len(dataset)} transitions, fewer than one minibatch "
                          f"(batch_size={config.batch_size})")
    if config.notebook_epoch_sampler and config.buffer_size < len(dataset):
        raise SaclabError(f"notebook_epoch_sampler needs buffer_size >= the dataset's {len(dataset)} "
                          f"transitions, got {config.buffer_size}")
    return spec


def q_bound(r_max: float, gamma: float) -> float:
    """The largest discounted return with rewards <= r_max: r_max/(1-gamma), or r_max if r_max < 0."""
    return r_max / (1.0 - gamma) if r_max >= 0 else r_max


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------
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
    """Train discrete SAC (CQL-SAC with ``config.cql_weight > 0``) offline on ``dataset``.

    Args:
        config: hyperparameters; ``epochs``, ``batch_size``, ``offline_eval_episodes``,
            ``max_episode_steps`` (evaluation cap), ``truncation_is_terminal`` and
            ``notebook_epoch_sampler`` set the schedule.
        dataset: the transitions (``Dataset.load(path)``); checked against ``config.env``.
        seed: run seed (network init and the epochs' permutations).
        run_dir: where logs and the checkpoint go (default ``runs/offline-ENV-TIME/seed-N``).
        resume: continue from ``run_dir/checkpoint`` if there is one (a finished run is returned as is).
        progress: show a progress bar (None: only on a terminal).
        tensorboard: also write TensorBoard events.
        on_epoch_end: called with the epoch's evaluation row after its checkpoint is written.
    """
    enable_compilation_cache()
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(KIND, config, seed)
    if resume and read_result(run_dir) is not None:
        return _finished(run_dir, config, seed)

    spec = check_dataset(dataset, config)
    learner = Learner.from_config(config, spec)
    n = len(dataset)
    updates_per_epoch = n // config.batch_size
    data_info = dataset_info(dataset)
    state = init_state(learner, jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed)
    counters = new_counters()

    checkpoint_dir = run_dir / "checkpoint"
    resumed = False
    if resume:
        restored = restore_checkpoint(run_dir, config, seed, data_info, state, rng)
        if restored is not None:
            state, counters = restored
            resumed = True

    r_max = float(dataset.rewards.max())
    bound = q_bound(r_max, config.gamma)
    mc_return = float(dataset.discounted_returns(config.gamma).mean())
    data = device_batch(dataset, config.truncation_is_terminal, zero_row=config.notebook_epoch_sampler)
    fixed_indices = None
    if config.notebook_epoch_sampler:
        fixed_indices = jnp.asarray(notebook_epoch_indices(notebook_permutation(seed, config.buffer_size),
                                                           n, config.batch_size))

    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, run_config(config, seed, spec, data_info))
    log = RunLog(run_dir, tensorboard=tensorboard, resume_step=counters["updates"] if resumed else None)
    evaluator = Evaluator(config.env, config.offline_eval_episodes, config.max_episode_steps)
    bar = progress_bar(config.epochs, counters["epoch"], desc=f"offline seed {seed}", enabled=progress)
    started = time.perf_counter() - counters["wall_time"]

    def greedy(observations: np.ndarray) -> np.ndarray:
        return np.asarray(greedy_action(learner, state.actor_params, observations))

    try:
        warned = False
        while counters["epoch"] < config.epochs:
            epoch = counters["epoch"] + 1
            indices = fixed_indices if fixed_indices is not None else jnp.asarray(
                epoch_indices(rng, n, config.batch_size))
            state, metrics = update_epoch(learner, state, data, indices)
            means = jax.device_get(jax.tree_util.tree_map(jnp.mean, metrics))  # the epoch's one host sync
            means = {k: float(v) for k, v in means.items()}
            bad = non_finite(means)
            if bad:
                raise SaclabError(diverged_message(bad, epoch, counters["epoch"], checkpoint_dir))
            counters["epoch"] = epoch
            counters["updates"] += updates_per_epoch
            step = counters["updates"]

            returns = evaluator.run(greedy, evaluation_seed(seed, epoch))
            row = evaluation_row(step, epoch, returns, means, mc_return, bound,
                                 round(time.perf_counter() - started, 3))
            log.log_eval(row)
            log.log_metrics({"step": step, "epoch": epoch, **means})
            if row["overestimated"] and not warned:  # once per run; every epoch's flag is in the log
                _warn(bar, overestimation_message(epoch, means, bound, run_dir))
                warned = True

            counters["wall_time"] = time.perf_counter() - started
            save_checkpoint(checkpoint_dir, state, checkpoint_meta(config, seed, counters, rng, data_info))
            bar.update(1)
            bar.set_postfix(eval=f"{row['return_mean']:.1f}", q=f"{means['q_data']:.1f}")
            if on_epoch_end is not None:
                on_epoch_end(row)
    finally:
        bar.close()
        log.close()
        evaluator.close()

    wall = time.perf_counter() - started
    summary, evaluations = finish_run(run_dir, config, counters, n, wall)
    return RunResult(run_dir, config, seed, summary, evaluations, state, learner)


# ---------------------------------------------------------------------------------------
# The pieces of a run's records (shared with saclab.runs.vmap_seeds)
# ---------------------------------------------------------------------------------------
def new_counters() -> dict[str, Any]:
    """A fresh run's counters (saved in every checkpoint)."""
    return {"epoch": 0, "updates": 0, "wall_time": 0.0}


def dataset_info(dataset: Dataset) -> dict[str, Any]:
    """The dataset's identity as recorded in config.json and checkpoints (the sha256 guards resume)."""
    return {"path": str(dataset.path) if dataset.path else None, "transitions": len(dataset),
            "sha256": dataset.fingerprint(), "env_id": dataset.env_id}


def run_config(config: SACConfig, seed: int, spec: EnvSpec, data_info: dict[str, Any]) -> dict[str, Any]:
    """The content of an offline run's config.json."""
    return {"kind": KIND, "seed": seed, "config": config.to_dict(), "env": vars(spec),
            "dataset": data_info, "saclab_version": __version__}


def checkpoint_meta(config: SACConfig, seed: int, counters: dict[str, Any], rng: np.random.Generator,
                    data_info: dict[str, Any]) -> dict[str, Any]:
    """The meta.json of an offline checkpoint (what ``train_offline(resume=True)`` reads)."""
    return {"kind": KIND, "seed": seed, "config": config.to_dict(), "counters": counters,
            "rng": rng.bit_generator.state, "dataset": data_info, "saclab_version": __version__}


def restore_checkpoint(run_dir: Path, config: SACConfig, seed: int, data_info: dict[str, Any], template: Any,
                       rng: np.random.Generator) -> tuple[Any, dict[str, Any]] | None:
    """Load ``run_dir``'s checkpoint, if any, after checking it fits: ``(state, counters)``, and
    ``rng`` set to the saved permutation generator's state; None when there is no checkpoint."""
    checkpoint = find_checkpoint(run_dir)
    if checkpoint is None:
        return None
    meta = load_meta(checkpoint)
    _check_compatible(meta, config, seed, data_info, checkpoint)
    state = load_state(checkpoint, template)
    rng.bit_generator.state = meta["rng"]
    return state, meta["counters"]


def non_finite(means: dict[str, float]) -> list[str]:
    """The names of the non-finite epoch means, sorted."""
    return sorted(k for k, v in means.items() if not math.isfinite(v))


def diverged_message(bad: list[str], epoch: int, last_epoch: int, checkpoint_dir: Path) -> str:
    return (f"training diverged: non-finite {', '.join(bad)} in epoch {epoch} "
            f"(last good checkpoint: epoch {last_epoch} in {checkpoint_dir})")


def evaluation_row(step: int, epoch: int, returns: np.ndarray, means: dict[str, float], mc_return: float,
                   bound: float, time_s: float) -> dict[str, Any]:
    """One row of evaluations.csv: return statistics and the value diagnostics."""
    overestimated = means["q_data"] > bound or means["q_greedy"] > bound
    return {"step": step, "epoch": epoch, **_return_stats(returns),
            "q_data": means["q_data"], "q_greedy": means["q_greedy"], "mc_return": mc_return,
            "q_bound": bound, "overestimated": overestimated, "time_s": time_s}


def overestimation_message(epoch: int, means: dict[str, float], bound: float, run_dir: Path | None = None) -> str:
    q = max(means["q_data"], means["q_greedy"])
    where = f"{run_dir}: " if run_dir is not None else ""
    return (f"saclab: warning: {where}epoch {epoch}: mean Q {q:.1f} exceeds r_max/(1-gamma) = {bound:.1f} "
            "(overestimation; the 'overestimated' column of evaluations.csv flags every epoch)")


def finish_run(run_dir: Path, config: SACConfig, counters: dict[str, Any], transitions: int, wall: float,
               **extra: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write result.json from the run's evaluations; returns (summary, evaluations)."""
    evaluations = read_evaluations(run_dir)
    summary = summarize(evaluations, epochs=counters["epoch"], updates=counters["updates"],
                        transitions=transitions, cql_weight=config.cql_weight, wall_time_s=round(wall, 2),
                        updates_per_s=round(counters["updates"] / max(wall, 1e-9), 1), **extra)
    write_result(run_dir, summary)
    return summary, evaluations


def _warn(bar: Any, message: str) -> None:
    if bar.disable:
        print(message, file=sys.stderr)
    else:
        bar.write(message, file=sys.stderr)


def _check_compatible(meta: dict, config: SACConfig, seed: int, data_info: dict, checkpoint: Path) -> None:
    if meta.get("kind") != KIND:
        raise SaclabError(f"cannot resume {checkpoint}: it is a {meta.get('kind', 'unknown')} run, not offline")
    saved = SACConfig.from_dict(meta["config"]).to_dict()
    differing = [k for k, v in config.to_dict().items() if k != "epochs" and saved[k] != v]
    if differing:
        raise SaclabError(f"cannot resume {checkpoint}: config differs in {', '.join(differing)}")
    if meta["seed"] != seed:
        raise SaclabError(f"cannot resume {checkpoint}: it was trained with seed {meta['seed']}, not {seed}")
    if meta["dataset"]["sha256"] != data_info["sha256"]:
        raise SaclabError(f"cannot resume {checkpoint}: it was trained on a different dataset "
                          f"({meta['dataset'].get('path') or 'sha256 ' + meta['dataset']['sha256'][:12]})")


__all__ = ["train_offline", "epoch_indices", "notebook_epoch_indices", "notebook_permutation", "device_batch",
           "check_dataset", "q_bound"]
