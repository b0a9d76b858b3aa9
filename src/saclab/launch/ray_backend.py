"""The Ray backend of ``saclab.launch.pool.run_jobs``: one Ray task per job.

Each job is a Ray core task asking for one CPU and running with one XLA/BLAS
thread (the variables of ``runtime.single_thread_environment`` passed through
``runtime_env``), so Ray packs one run per core, as the local process pool
does.  A task runs ``jobs.run_job_safely``: the same run directories, the
same resume rules and the same results as the local backend.

On a cluster (``address="ray://head:10001"`` or ``"auto"``) every node needs
saclab installed, and the run directories (and an offline sweep's dataset)
must be at the same absolute path on every node, i.e. on a shared file system.
Ray is imported only here, only when used (``pip install 'saclab[ray]'``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from saclab.errors import SaclabError
from saclab.launch.jobs import Job, JobOutcome, default_workers, run_job_safely

THREAD_VARIABLES = ("XLA_FLAGS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SaclabError("the ray backend needs Ray: pip install 'saclab[ray]'") from None
    return ray


def task_environment(local: bool) -> dict[str, str]:
    """Environment variables of each task: one XLA/BLAS thread, and (for a local instance
    only: its paths mean nothing on other machines) saclab's compilation cache directory."""
    from saclab.runtime import single_thread_environment

    env = single_thread_environment()
    names = THREAD_VARIABLES + (("SACLAB_CACHE",) if local else ())
    return {name: env[name] for name in names if name in env}


def _absolute(job: Job) -> Job:
    """The job with absolute paths: a Ray worker's working directory is not the caller's."""
    dataset = str(Path(job.dataset).resolve()) if job.dataset is not None else None
    return dataclasses.replace(job, run_dir=str(Path(job.run_dir).resolve()), dataset=dataset)


def run_ray(jobs: Sequence[Job], address: str | None = None,
            on_done: Callable[[JobOutcome], None] | None = None) -> list[JobOutcome]:
    """Run ``jobs`` as Ray tasks (one CPU each); outcomes in the order of ``jobs``.

    Uses the Ray instance this process is already connected to if there is one,
    else ``ray.init(address=address)`` (None: a new local instance with one CPU
    per core this process may use, bound to 127.0.0.1).  Only an instance started here is shut down
    at the end.  A failing job (or a crashed worker) is reported in its
    outcome; the others go on.
    """
    ray = import_ray()
    if not jobs:
        return []
    started = local = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"address": address, "include_dashboard": False, "logging_level": logging.WARNING}
        if address is None and not os.environ.get("RAY_ADDRESS"):
            options["num_cpus"] = default_workers()
            options["_node_ip_address"] = "127.0.0.1"  # a local instance listens on this machine only
            local = True
        try:
            with warnings.catch_warnings():  # Ray starts its processes with fork+exec, which is safe
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
                ray.init(**options)
        except Exception as e:  # noqa: BLE001 - connection errors come in many types
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise SaclabError(f"cannot start or reach {where}: {e}".splitlines()[0]) from None
        started = True
    task = ray.remote(num_cpus=1, max_retries=1)(run_job_safely).options(
        runtime_env={"env_vars": task_environment(local)})
    outcomes: list[JobOutcome | None] = [None] * len(jobs)
    pending: dict[Any, int] = {}
    try:
        pending = {task.remote(_absolute(job)): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    summary, error = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a worker crash or a lost node
                    summary, error = None, f"{type(e).__name__}: {e}".splitlines()[0]
                outcomes[i] = JobOutcome(jobs[i], summary, error)
                if on_done:
                    on_done(outcomes[i])
    except BaseException:  # Ctrl-C: stop what is queued (runs keep their checkpoints)
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return outcomes  # type: ignore[return-value]


__all__ = ["run_ray", "import_ray", "task_environment"]
