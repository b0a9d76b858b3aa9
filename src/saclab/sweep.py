"""Many runs: seeds and configuration grids, on local processes (or Ray).

A ``Job`` is one training run (online, or offline on a dataset) with its own
run directory.  ``run_jobs`` executes jobs on a backend and returns one
``JobOutcome`` per job, in order; a failing job is reported with its error
and does not stop the others.  Every job resumes from its checkpoint, and a
finished job (``result.json`` present) is not run again, so re-running a
sweep completes it without duplicating work.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saclab.config import SACConfig
from saclab.errors import SaclabError


@dataclass(frozen=True)
class Job:
    """One run: ``kind`` is "online" or "offline" (offline needs ``dataset``)."""

    kind: str
    config: SACConfig
    seed: int
    run_dir: str
    dataset: str | None = None
    tags: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class JobOutcome:
    job: Job
    summary: dict[str, Any] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_job(job: Job, progress: bool | None = False) -> dict[str, Any]:
    """Run (or resume, or skip if finished) one job in this process; returns its summary."""
    if job.kind == "online":
        from saclab.online import train_online

        result = train_online(job.config, job.seed, job.run_dir, resume=True, progress=progress)
    elif job.kind == "offline":
        from saclab.data import Dataset
        from saclab.offline import train_offline

        if job.dataset is None:
            raise SaclabError("an offline job needs a dataset")
        result = train_offline(job.config, Dataset.load(job.dataset), job.seed, job.run_dir, resume=True,
                               progress=progress)
    else:
        raise SaclabError(f"unknown job kind {job.kind!r} (online or offline)")
    return result.summary


def _run_job_safely(job: Job) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return run_job(job), None
    except SaclabError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - a failing run is reported, not fatal to the sweep
        return None, f"{type(e).__name__}: {e}"


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_jobs(
    jobs: Sequence[Job],
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    on_done: Any = None,
) -> list[JobOutcome]:
    """Run ``jobs`` on ``backend`` ("local": a process pool, one single-threaded
    run per core; "ray": Ray tasks).  ``on_done(outcome)`` is called as each finishes."""
    if backend == "local":
        return _run_local(jobs, workers or default_workers(), on_done)
    if backend == "ray":
        from saclab.ray_backend import run_ray

        return run_ray(jobs, address=address, on_done=on_done)
    raise SaclabError(f"unknown backend {backend!r} (local or ray)")


def _run_local(jobs: Sequence[Job], workers: int, on_done: Any) -> list[JobOutcome]:
    from saclab.runtime import single_thread_environment

    outcomes: list[JobOutcome | None] = [None] * len(jobs)
    if workers == 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            summary, error = _run_job_safely(job)
            outcomes[i] = JobOutcome(job, summary, error)
            if on_done:
                on_done(outcomes[i])
        return outcomes  # type: ignore[return-value]
    # Children inherit the environment at spawn: one XLA/BLAS thread each, one run per core.
    saved = dict(os.environ)
    os.environ.update(single_thread_environment())
    try:
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
            futures = {pool.submit(_run_job_safely, job): i for i, job in enumerate(jobs)}
            for future in cf.as_completed(futures):
                i = futures[future]
                try:
                    summary, error = future.result()
                except Exception as e:  # noqa: BLE001 - e.g. a worker killed by the OS
                    summary, error = None, f"{type(e).__name__}: {e}"
                outcomes[i] = JobOutcome(jobs[i], summary, error)
                if on_done:
                    on_done(outcomes[i])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return outcomes  # type: ignore[return-value]


def seed_jobs(kind: str, config: SACConfig, seeds: Sequence[int], out: str | Path,
              dataset: str | None = None) -> list[Job]:
    """One job per seed, in ``out/seed-N``."""
    return [Job(kind, config, s, str(Path(out) / f"seed-{s}"), dataset) for s in seeds]


def grid_jobs(kind: str, base: SACConfig, grid: dict[str, Sequence[Any]], seeds: Sequence[int],
              out: str | Path, dataset: str | None = None) -> list[Job]:
    """The Cartesian product of ``grid`` (field -> values) times ``seeds``.

    Run directories are ``out/<field>=<value>[,...]/seed-N``.
    """
    names = list(grid)
    jobs = []
    for values in itertools.product(*(grid[n] for n in names)):
        changes = dict(zip(names, values, strict=True))
        config = base.replace(**changes)
        label = ",".join(f"{n}={_fmt(v)}" for n, v in changes.items()) or "base"
        for s in seeds:
            jobs.append(Job(kind, config, s, str(Path(out) / label / f"seed-{s}"), dataset, tags=changes))
    return jobs


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)
