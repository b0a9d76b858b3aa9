"""Jobs: one training run (online, or offline on a dataset) with its own run directory,
and what became of it.  ``run_job`` runs one in this process; ``saclab.launch.pool.run_jobs``
runs many on a backend.  Every job resumes from its checkpoint, and a finished job
(``result.json`` present) is not run again."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saclab.config import SACConfig
from saclab.errors import SaclabError
from saclab.locks import directory_lock

KINDS = ("online", "offline")


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
    """What became of a job: its summary (``result.json``), or the error that stopped it."""

    job: Job
    summary: dict[str, Any] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_job(job: Job, progress: bool | None = False) -> dict[str, Any]:
    """Run (or resume, or skip if finished) one job in this process, holding its run directory's
    lock (``saclab.locks``) so that no other process trains there meanwhile; returns its summary."""
    with directory_lock(job.run_dir, "run"):
        return _run_job(job, progress)


def _run_job(job: Job, progress: bool | None) -> dict[str, Any]:
    if job.kind == "online":
        from saclab.runs.online import train_online

        result = train_online(job.config, job.seed, job.run_dir, resume=True, progress=progress)
    elif job.kind == "offline":
        from saclab.data.dataset import Dataset
        from saclab.runs.offline import train_offline

        if job.dataset is None:
            raise SaclabError("an offline job needs a dataset")
        result = train_offline(job.config, Dataset.load(job.dataset), job.seed, job.run_dir, resume=True,
                               progress=progress)
    else:
        raise SaclabError(f"unknown job kind {job.kind!r} (online or offline)")
    return result.summary


def run_job_safely(job: Job) -> tuple[dict[str, Any] | None, str | None]:
    """``run_job`` with any error turned into a one-line message: (summary, None) or (None, error)."""
    try:
        return run_job(job), None
    except SaclabError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - a failing run is reported, not fatal to the sweep
        return None, f"{type(e).__name__}: {e}".splitlines()[0]


def default_workers() -> int:
    """One worker per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def seed_jobs(kind: str, config: SACConfig, seeds: Sequence[int], out: str | Path,
              dataset: str | None = None) -> list[Job]:
    """One job per seed, in ``out/seed-N``."""
    return [Job(kind, config, s, str(Path(out) / f"seed-{s}"), dataset) for s in seeds]


__all__ = ["Job", "JobOutcome", "KINDS", "run_job", "run_job_safely", "default_workers", "seed_jobs"]
