"""Running many jobs: a local pool of single-threaded processes, one per core, or Ray
(``saclab.launch.ray_backend``).  ``run_jobs`` returns one ``JobOutcome`` per job, in order;
a failing job is reported with its error and does not stop the others."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from saclab.errors import SaclabError
from saclab.launch.jobs import Job, JobOutcome, default_workers, run_job_safely
from saclab.runtime import single_thread_environment

BACKENDS = ("local", "ray")
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def run_jobs(
    jobs: Sequence[Job],
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    on_done: Callable[[JobOutcome], None] | None = None,
) -> list[JobOutcome]:
    """Run ``jobs`` on ``backend`` and return their outcomes, in the order of ``jobs``.

    ``"local"``: a process pool of ``workers`` (default one per core), one
    single-threaded run per process; ``workers=1`` runs the jobs one after
    the other in this process.  ``"ray"``: one Ray task per job
    (``saclab.launch.ray_backend``; ``address`` names a cluster, None starts a local
    instance).  ``on_done(outcome)`` is called as each job finishes.
    """
    if backend == "local":
        if address is not None:
            raise SaclabError("--address is for the ray backend only")
        return run_local(jobs, workers or default_workers(), on_done)
    if backend == "ray":
        from saclab.launch.ray_backend import run_ray

        return run_ray(jobs, address=address, on_done=on_done)
    raise SaclabError(f"unknown backend {backend!r} (choose local or ray)")


def _init_worker(cores: Any, parent_pid: int) -> None:
    """Worker initializer: die with the parent, then take one core of the queue and stay on it."""
    _die_with_parent(parent_pid)
    _pin_to_core(cores)


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker end when the process that started it ends, even by ``kill -9``: an orphan
    would go on training in run directories that a rerun then trains in too.  Linux delivers
    SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread polls the
    parent's PID.  Checkpoints are written atomically, so a killed run resumes exactly."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl failed")
    except (OSError, AttributeError, TypeError):  # not Linux (TypeError: CDLL(None) on Windows)
        _start_parent_watchdog(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _start_parent_watchdog(parent_pid: int, interval_s: float = 1.0) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="saclab-parent-watchdog", daemon=True).start()


def _pin_to_core(cores: Any) -> None:
    """Take one core of the queue and stay on it.  Even with one XLA thread a
    JAX process keeps a second core busy part of the time (its runtime threads); pinned workers
    do not compete for cores, so N workers on N cores run N times as fast as one pinned worker."""
    import queue

    try:
        os.sched_setaffinity(0, {cores.get_nowait()})
    except (queue.Empty, AttributeError, OSError):
        pass


def run_local(jobs: Sequence[Job], workers: int, on_done: Callable[[JobOutcome], None] | None
               ) -> list[JobOutcome]:
    if workers < 1:
        raise SaclabError(f"workers must be >= 1, got {workers}")
    outcomes: list[JobOutcome | None] = [None] * len(jobs)

    def finish(i: int, summary: dict[str, Any] | None, error: str | None) -> None:
        outcomes[i] = JobOutcome(jobs[i], summary, error)
        if on_done:
            on_done(outcomes[i])

    if workers == 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            finish(i, *run_job_safely(job))
        return outcomes  # type: ignore[return-value]
    # Children inherit the environment at spawn: one XLA/BLAS thread each, one run per core.
    saved = dict(os.environ)
    os.environ.update(single_thread_environment())
    try:
        context = multiprocessing.get_context("spawn")
        n_workers = min(workers, len(jobs))
        cores: Any = context.Queue()
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if n_workers <= len(available):  # one core per worker; otherwise let the OS share them
            for core in available[:n_workers]:
                cores.put(core)
        with cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=context, initializer=_init_worker,
                                    initargs=(cores, os.getpid())) as pool:
            futures = {pool.submit(run_job_safely, job): i for i, job in enumerate(jobs)}
            try:
                for future in cf.as_completed(futures):
                    try:
                        summary, error = future.result()
                    except Exception as e:  # noqa: BLE001 - e.g. a worker killed by the OS
                        summary, error = None, f"{type(e).__name__}: {e}"
                    finish(futures[future], summary, error)
            except BaseException:  # Ctrl-C: start nothing more (runs in flight keep their checkpoints)
                for future in futures:
                    future.cancel()
                raise
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return outcomes  # type: ignore[return-value]


__all__ = ["run_jobs", "run_local", "BACKENDS"]
