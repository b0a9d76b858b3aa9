"""Training on gymnax envs with the compiled loop (``runs.compiled``): one seed, or several seeds
vmapped into one program.

The device runs ``CHUNK_STEPS`` env steps and their updates per call; between calls the host
does each seed's bookkeeping (``SeedRun``): episode counts, evaluation, the run files and
checkpoints.  A vmapped group is S ordinary runs computed together: each seed writes the run
directory, and the checkpoints, that ``train_compiled`` would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file

from saclab.config import SACConfig
from saclab.core.agent import METRIC_NAMES, Learner
from saclab.core.types import EnvSpec
from saclab.data import device_buffer
from saclab.envs.gymnax_envs import make_gymnax
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.runs.checkpoint import find_checkpoint, load_meta, pytree_to_arrays, save_checkpoint
from saclab.runs.compiled import (
    CHUNK_STEPS,
    LOOP_FILE,
    LoopSettings,
    LoopState,
    check_checkpoint,
    check_supported,
    evaluate_greedy,
    init_loop,
    load_loop,
    run_chunk,
    run_chunk_seeds,
)
from saclab.runs.diagnostics import RunawayWatch, final_diagnostics
from saclab.runs.offline_records import warn
from saclab.runs.run import (
    RunResult,
    budget_spent,
    evaluation_seed,
    finished_result,
    return_stats,
    stack_seeds,
    summarize,
    take_seed,
)
from saclab.runs.runlog import CONFIG_FILE, REPLAY_FILE, RunLog, read_evaluations, read_result, write_result
from saclab.runtime import enable_compilation_cache, progress_bar
from saclab.version import __version__


class SeedRun:
    """The host side of one seed's compiled run: its counters, run files, evaluations and checkpoints.
    Methods that read the device take this seed's ``LoopState`` (unstacked)."""

    def __init__(self, config: SACConfig, seed: int, run_dir: Path, spec: EnvSpec, chunk_steps: int,
                 meta: dict | None, tensorboard: bool) -> None:
        self.config, self.seed, self.dir, self.chunk_steps = config, seed, run_dir, chunk_steps
        self.counters = meta["counters"] if meta else {"step": 0, "episode": 0, "evaluations": 0,
                                                       "evaluated_blocks": 0, "last_checkpoint_step": 0,
                                                       "wall_time": 0.0}
        self.train_returns: list[float] = list(meta["train_returns"]) if meta else []
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, {"kind": "online", "loop": "compiled", "seed": seed,
                                           "config": config.to_dict(), "env": vars(spec),
                                           "saclab_version": __version__})
        self.log = RunLog(run_dir, tensorboard=tensorboard, resume_step=self.counters["step"] if meta else None)
        self.watch = RunawayWatch(config.initial_alpha, spec.num_actions, config.gamma, config.entropy_backup,
                                  str(run_dir), read_evaluations(run_dir) if meta else ())
        self.started = time.perf_counter() - self.counters["wall_time"]

    def record_chunk(self, length: int, finished: np.ndarray) -> bool:
        """Count a chunk's steps and ended episodes (``finished``: NaN where none ended); whether an
        evaluation is due (every ``eval_every_episodes`` episodes, at the first chunk end after)."""
        ended = finished[~np.isnan(finished)]
        self.train_returns.extend(ended.tolist())
        self.counters["step"] += length
        self.counters["episode"] += len(ended)
        blocks = self.counters["episode"] // self.config.eval_every_episodes
        if blocks > self.counters["evaluated_blocks"]:
            self.counters["evaluated_blocks"] = blocks
            return True
        return False

    @property
    def done(self) -> bool:
        return budget_spent(self.config, self.counters)

    def checkpoint_due(self) -> bool:
        since = self.counters["step"] - self.counters["last_checkpoint_step"]
        return bool(self.config.checkpoint_every_steps and since >= self.config.checkpoint_every_steps)

    def evaluation_pending(self, metric_count: int) -> bool:
        """Whether anything happened since the last evaluation (or there was none)."""
        return bool(metric_count or self.train_returns or not self.counters["evaluations"])

    def evaluate(self, learner: Learner, env: Any, env_params: Any, loop: LoopState, max_reward: float,
                 bar: Any) -> None:
        """Greedy episodes, the losses' means since the last evaluation, one row of evaluations.csv
        (``loop``'s agent and metric sums are read; ``max_reward`` is the replay buffer's largest reward).
        The caller resets the loop's metric sums."""
        config, counters = self.config, self.counters
        sums, count = np.asarray(loop.metric_sums, np.float64), int(loop.metric_count)
        if not np.all(np.isfinite(sums)):
            raise SaclabError(f"training diverged: non-finite loss before step {counters['step']}; "
                              "try smaller learning rates")
        key = jax.random.PRNGKey(evaluation_seed(self.seed, counters["evaluations"]))
        returns = np.asarray(evaluate_greedy(learner, env, config.eval_episodes, int(env_params.max_steps_in_episode),
                                             env_params, loop.agent.actor_params, key), np.float64)
        counters["evaluations"] += 1
        means = {name: float(v) / count for name, v in zip(METRIC_NAMES, sums, strict=True)} if count else {}
        row = {"step": counters["step"], "episode": counters["episode"], **return_stats(returns),
               "train_return": float(np.mean(self.train_returns)) if self.train_returns else None,
               **self.watch.columns(counters["step"], means, max_reward),
               "time_s": round(time.perf_counter() - self.started, 3)}
        self.log.log_eval(row)
        for message in self.watch.warnings(row):
            warn(bar, message)
        if means:
            self.log.log_metrics({"step": counters["step"], "episode": counters["episode"], **means})
        bar.set_postfix(eval=f"{row['return_mean']:.1f}")
        self.train_returns.clear()

    def checkpoint(self, loop: LoopState) -> None:
        self.counters["last_checkpoint_step"] = self.counters["step"]
        self.counters["wall_time"] = time.perf_counter() - self.started
        meta = {"kind": "compiled", "seed": self.seed, "config": self.config.to_dict(),
                "chunk_steps": self.chunk_steps, "counters": self.counters, "train_returns": self.train_returns,
                "saclab_version": __version__}
        rest = pytree_to_arrays(loop.replace(agent=None))
        save_checkpoint(self.dir / "checkpoint", loop.agent, meta, lambda d: save_file(rest, str(d / LOOP_FILE)))

    def finish(self, loop: LoopState, learner: Learner, save_replay: bool, **extra: Any) -> RunResult:
        """The replay dataset and result.json of a run whose last evaluation and checkpoint are written."""
        self.log.close()
        wall = time.perf_counter() - self.started
        if save_replay:
            from saclab.data.dataset import save_replay

            save_replay(device_buffer.HostView(loop.replay), self.config, self.seed, "compiled online replay buffer",
                        self.dir / REPLAY_FILE)
        evaluations = read_evaluations(self.dir)
        steps = self.counters["step"]
        summary = summarize(evaluations, steps=steps, episodes=self.counters["episode"], wall_time_s=round(wall, 2),
                            steps_per_s=round(steps / max(wall, 1e-9), 1), loop="compiled", **extra,
                            **final_diagnostics(evaluations))
        write_result(self.dir, summary)
        return RunResult(self.dir, self.config, self.seed, summary, evaluations, loop.agent, learner)


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
    return _train(config, {seed: Path(run_dir)}, False, resume, progress, tensorboard, save_replay, chunk_steps,
                  on_chunk_end)[0]


def train_compiled_vmapped(config: SACConfig, seeds: Iterable[int], out: str | Path, resume: bool = False,
                           progress: bool | None = None, tensorboard: bool = True, save_replay: bool = True,
                           chunk_steps: int = CHUNK_STEPS,
                           on_chunk_end: Callable[[dict[str, Any]], None] | None = None) -> list[RunResult]:
    """Train several seeds of one gymnax configuration as one compiled program (``saclab train --vmap``).

    The seeds' loop states are stacked on a leading axis and each chunk is ``jax.vmap`` of the
    compiled loop: on a GPU, S small runs cost little more than one.  Each seed writes
    ``out/seed-N`` as ``train_compiled`` does; batched matrix products round differently in the
    last bits, so parameters agree with the separate runs to about 1e-5 on a CPU (about 1e-3 on a
    GPU, whose float32 products use TF32), not bit for bit.  Each
    checkpoint is an ordinary compiled checkpoint (``train_compiled(..., resume=True)`` continues a
    seed alone); ``resume`` continues the group when every unfinished seed's checkpoint is at the
    same step.  A seed whose loss diverges stops being logged while the others go on; its error is
    raised at the end.  The caller locks the run directories.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise SaclabError("no seeds to train")
    if len(set(seeds)) != len(seeds):
        raise SaclabError(f"seeds must be distinct, got {seeds}")
    return _train(config, {s: Path(out) / f"seed-{s}" for s in seeds}, True, resume, progress, tensorboard,
                  save_replay, chunk_steps, on_chunk_end)


def _train(config: SACConfig, run_dirs: dict[int, Path], vmapped: bool, resume: bool, progress: bool | None,
           tensorboard: bool, save_replay: bool, chunk_steps: int,
           on_chunk_end: Callable[[dict[str, Any]], None] | None) -> list[RunResult]:
    """The compiled loop's host side, for one seed (``vmapped`` False) or several seeds vmapped together."""
    check_supported(config)
    enable_compilation_cache()
    env, env_params, spec = make_gymnax(config.env, config.max_episode_steps)
    learner = Learner.from_config(config, spec)
    settings = LoopSettings(config.batch_size, config.learning_starts, config.updates_per_call,
                            config.truncation_is_terminal)
    results: dict[int, RunResult] = {}
    loops: dict[int, LoopState] = {}
    metas: dict[int, dict] = {}
    for seed, run_dir in run_dirs.items():
        loop = init_loop(learner, env, env_params, config, seed, spec.obs_dtype)
        if resume and (checkpoint := find_checkpoint(run_dir)) is not None:
            meta = load_meta(checkpoint)
            check_checkpoint(meta, config, seed, chunk_steps, checkpoint)
            if read_result(run_dir) is not None and budget_spent(config, meta["counters"]):
                results[seed] = finished_result(run_dir, config, seed)
                continue
            loop, metas[seed] = load_loop(checkpoint, loop), meta
        loops[seed] = loop
    active = list(loops)
    if not active:
        return [results[s] for s in run_dirs]
    starts = sorted({metas[s]["counters"]["step"] if s in metas else 0 for s in active})
    if len(starts) > 1:
        raise SaclabError(f"cannot resume the seeds together: their checkpoints are at steps "
                          f"{', '.join(map(str, starts))}; resume each without --vmap")
    runs = {s: SeedRun(config, s, run_dirs[s], spec, chunk_steps, metas.get(s), tensorboard) for s in active}
    loop = stack_seeds([loops[s] for s in active]) if vmapped else loops[active[0]]
    del loops
    step = starts[0]
    running, failed = list(active), {}
    first = runs[active[0]]
    budget = config.total_steps or config.total_episodes
    bar = progress_bar(budget, step if config.total_steps else first.counters["episode"],
                       desc=f"compiled seed{'s' if vmapped else ''} {', '.join(map(str, active))}", enabled=progress)

    def own(i: int) -> LoopState:
        """Seed ``i``'s loop, unstacked."""
        return take_seed(loop, i) if vmapped else loop

    def reset_metrics(i: int) -> None:
        nonlocal loop
        if vmapped:
            loop = loop.replace(metric_sums=loop.metric_sums.at[i].set(0.0),
                                metric_count=loop.metric_count.at[i].set(0))
        else:
            loop = loop.replace(metric_sums=jnp.zeros_like(loop.metric_sums), metric_count=jnp.zeros((), jnp.int32))

    def evaluate(i: int, run: SeedRun) -> None:
        if vmapped:  # this seed's agent and sums, without slicing the buffers
            seed_loop = take_seed(loop.replace(replay=None, env_state=None), i)
            rewards_only = loop.replay.replace(observations=None, next_observations=None)
            max_reward = float(device_buffer.max_reward(take_seed(rewards_only, i)))
        else:
            seed_loop, max_reward = loop, float(device_buffer.max_reward(loop.replay))
        run.evaluate(learner, env, env_params, seed_loop, max_reward, bar)
        reset_metrics(i)

    try:
        while running:
            length = min(chunk_steps, config.total_steps - step) if config.total_steps else chunk_steps
            loop, finished = (run_chunk_seeds if vmapped else run_chunk)(learner, settings, env, length, env_params,
                                                                         loop)
            finished = np.asarray(finished, np.float64).reshape(len(active), length)
            step += length
            episodes_before = min(runs[s].counters["episode"] for s in running)
            for i, s in enumerate(active):
                if s not in running:
                    continue
                run = runs[s]
                try:
                    if run.record_chunk(length, finished[i]):
                        evaluate(i, run)
                    if run.done:
                        if run.evaluation_pending(int(loop.metric_count[i] if vmapped else loop.metric_count)):
                            evaluate(i, run)
                        seed_loop = own(i)
                        run.checkpoint(seed_loop)
                        results[s] = run.finish(seed_loop, learner, save_replay,
                                                **({"vmap_seeds": len(active)} if vmapped else {}))
                        running.remove(s)
                    elif run.checkpoint_due():
                        run.checkpoint(own(i))
                except SaclabError as e:
                    if not vmapped:
                        raise
                    failed[s] = str(e)
                    running.remove(s)
                    run.log.close()
                    warn(bar, f"saclab: seed {s}: {e}")
            shown = min((runs[s].counters["episode"] for s in running), default=budget)
            bar.update(length if config.total_steps else max(shown - episodes_before, 0))
            if on_chunk_end is not None:
                on_chunk_end({"step": step, "episode": first.counters["episode"]})
    finally:
        bar.close()
        for s in running:
            runs[s].log.close()
    if failed:
        first_failed = min(failed)
        others = f" ({len(failed) - 1} more seeds failed)" if len(failed) > 1 else ""
        raise SaclabError(f"seed {first_failed}: {failed[first_failed]}{others}")
    return [results[s] for s in run_dirs]


__all__ = ["SeedRun", "train_compiled", "train_compiled_vmapped"]
