"""Many runs: seeds and configuration grids, on local processes or Ray.

A ``Job`` is one training run (online, or offline on a dataset) with its own
run directory.  ``run_jobs`` executes jobs on a backend and returns one
``JobOutcome`` per job, in order; a failing job is reported with its error
and does not stop the others.  Every job resumes from its checkpoint, and a
finished job (``result.json`` present) is not run again, so re-running a
sweep completes it without duplicating work.

An ``Experiment`` is a sweep's description: a base ``SACConfig``, a grid
(field -> values), seeds, the kind (online or offline) and the dataset.
``sweep()`` writes it to ``OUT/sweep.json`` and runs its jobs in
``OUT/<label>/seed-N`` (label ``field=value,...`` or ``base`` without a grid);
running the same experiment on the same ``OUT`` again resumes it, and a
different one is refused.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import json
import multiprocessing
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saclab.config import SACConfig
from saclab.errors import SaclabError

KINDS = ("online", "offline")
BACKENDS = ("local", "ray")
EXPERIMENT_FILE = "sweep.json"


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


# ---------------------------------------------------------------------------------------
# Running jobs
# ---------------------------------------------------------------------------------------
def run_job(job: Job, progress: bool | None = False) -> dict[str, Any]:
    """Run (or resume, or skip if finished) one job in this process; returns its summary."""
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


_run_job_safely = run_job_safely  # the name older callers use


def default_workers() -> int:
    """One worker per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


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
        return _run_local(jobs, workers or default_workers(), on_done)
    if backend == "ray":
        from saclab.launch.ray_backend import run_ray

        return run_ray(jobs, address=address, on_done=on_done)
    raise SaclabError(f"unknown backend {backend!r} (choose local or ray)")


def _pin_to_core(cores: Any) -> None:
    """Worker initializer: take one core of the queue and stay on it.  Even with one XLA thread a
    JAX process keeps a second core busy part of the time (its runtime threads); pinned workers
    do not compete for cores, so N workers on N cores run N times as fast as one pinned worker."""
    import queue

    try:
        os.sched_setaffinity(0, {cores.get_nowait()})
    except (queue.Empty, AttributeError, OSError):
        pass


def _run_local(jobs: Sequence[Job], workers: int, on_done: Callable[[JobOutcome], None] | None
               ) -> list[JobOutcome]:
    from saclab.runtime import single_thread_environment

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
        with cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=context, initializer=_pin_to_core,
                                    initargs=(cores,)) as pool:
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


# ---------------------------------------------------------------------------------------
# Describing many runs
# ---------------------------------------------------------------------------------------
def seed_jobs(kind: str, config: SACConfig, seeds: Sequence[int], out: str | Path,
              dataset: str | None = None) -> list[Job]:
    """One job per seed, in ``out/seed-N``."""
    return [Job(kind, config, s, str(Path(out) / f"seed-{s}"), dataset) for s in seeds]


def grid_jobs(kind: str, base: SACConfig, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int],
              out: str | Path, dataset: str | None = None) -> list[Job]:
    """The Cartesian product of ``grid`` (field -> values) times ``seeds``.

    Run directories are ``out/<label>/seed-N`` with ``label`` from ``grid_label``;
    jobs come configuration by configuration, seeds innermost.
    """
    names = list(grid)
    jobs = []
    for values in itertools.product(*(grid[n] for n in names)):
        changes = dict(zip(names, values, strict=True))
        config = base.replace(**changes)
        label = grid_label(changes)
        for s in seeds:
            jobs.append(Job(kind, config, s, str(Path(out) / label / f"seed-{s}"), dataset, tags=changes))
    return jobs


def grid_label(changes: Mapping[str, Any]) -> str:
    """A configuration's directory name: ``field=value,...`` in grid order (``base`` if empty)."""
    return ",".join(f"{n}={_fmt(v)}" for n, v in changes.items()) or "base"


def grid_labels(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """The labels of all configurations of ``grid``, in run order."""
    names = list(grid)
    return [grid_label(dict(zip(names, values, strict=True)))
            for values in itertools.product(*(grid[n] for n in names))]


def _fmt(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------
# Grid values: typed by the SACConfig field they set
# ---------------------------------------------------------------------------------------
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(SACConfig)


def config_field(name: str) -> str:
    """The SACConfig field called ``name`` (dashes accepted for underscores), or a one-line error."""
    key = name.strip().replace("-", "_")
    if key not in _field_types():
        raise SaclabError(f"unknown config field {name!r} (see `saclab train --help` for the fields)")
    return key


def parse_value(name: str, text: str) -> Any:
    """Parse ``text`` as a value of SACConfig field ``name`` (float, int, bool, str;
    hidden_sizes as ``128x128``)."""
    kind = _field_types()[name]
    text = text.strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            if not text:
                raise ValueError(text)
            return text
        if typing.get_origin(kind) is tuple:
            return tuple(int(w) for w in text.lower().split("x"))
    except ValueError:
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a non-empty string"}
        raise SaclabError(f"bad value {text!r} for {name}: expected "
                          f"{expected.get(kind, 'widths like 128x128')}") from None
    raise SaclabError(f"field {name} cannot be swept")  # pragma: no cover - every field has a type above


def coerce_value(name: str, value: Any) -> Any:
    """``value`` as the type of field ``name`` (strings are parsed; 1 -> 1.0 for float fields)."""
    kind = _field_types()[name]
    if isinstance(value, str) and kind is not str:
        return parse_value(name, value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if typing.get_origin(kind) is tuple and isinstance(value, (tuple, list)):
        try:
            return tuple(int(w) for w in value)
        except (TypeError, ValueError):
            pass
    raise SaclabError(f"bad value {value!r} for {name} (a {getattr(kind, '__name__', kind)})")


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["cql_weight=0,0.5,1", "hidden_sizes=64x64,128x128"]`` -> ``{field: [values]}``, typed."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not values.strip():
            raise SaclabError(f"--set expects FIELD=V1,V2,..., got {spec!r}")
        key = config_field(name)
        if key in grid:
            raise SaclabError(f"--set {key} given twice")
        grid[key] = [parse_value(key, v) for v in values.split(",")]
    return normalize_grid(grid)


def normalize_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Check field names and value types, refuse empty or repeated values; a typed copy."""
    out: dict[str, list[Any]] = {}
    for name, values in grid.items():
        key = config_field(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise SaclabError(f"grid values of {key} must be a list, got {values!r}")
        typed = [coerce_value(key, v) for v in values]
        if not typed:
            raise SaclabError(f"grid field {key} has no values")
        labels = [_fmt(v) for v in typed]
        repeated = sorted({v for v in labels if labels.count(v) > 1})
        if repeated:
            raise SaclabError(f"grid field {key} repeats value(s) {', '.join(repeated)}")
        if key in out:
            raise SaclabError(f"grid field {key} given twice")
        out[key] = typed
    return out


# ---------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Experiment:
    """A sweep: ``kind`` runs of ``base`` with each combination of ``grid``, times ``seeds``."""

    kind: str
    base: SACConfig
    grid: dict[str, list[Any]]
    seeds: tuple[int, ...]
    dataset: str | None = None

    @classmethod
    def create(cls, kind: str, base: SACConfig, grid: Mapping[str, Sequence[Any]] | None,
               seeds: int | Sequence[int], dataset: str | os.PathLike | None = None) -> Experiment:
        """Check and normalise a description (seeds: a count from 0, or the seeds themselves)."""
        if kind not in KINDS:
            raise SaclabError(f"unknown sweep kind {kind!r} (online or offline)")
        if not isinstance(base, SACConfig):
            raise SaclabError("the base config must be a SACConfig")
        seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
        if not seed_list:
            raise SaclabError("a sweep needs at least one seed")
        if len(set(seed_list)) != len(seed_list):
            raise SaclabError(f"repeated seeds in {seed_list}")
        if kind == "offline" and dataset is None:
            raise SaclabError("an offline sweep needs a dataset (--dataset FILE)")
        if kind == "online" and dataset is not None:
            raise SaclabError("an online sweep takes no dataset")
        path = str(Path(dataset).resolve()) if dataset is not None else None
        experiment = cls(kind, base, normalize_grid(grid or {}), tuple(seed_list), path)
        experiment.configs()  # every combination must be a valid config
        return experiment

    def configs(self) -> list[tuple[str, SACConfig]]:
        """(label, config) of each combination, in run order."""
        names = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[n] for n in names)):
            changes = dict(zip(names, values, strict=True))
            try:
                out.append((grid_label(changes), self.base.replace(**changes)))
            except SaclabError as e:
                raise SaclabError(f"{grid_label(changes)}: {e}") from None
        return out

    def labels(self) -> list[str]:
        return grid_labels(self.grid)

    def jobs(self, out: str | os.PathLike) -> list[Job]:
        """One job per (configuration, seed) in ``out/<label>/seed-N`` (absolute paths)."""
        return grid_jobs(self.kind, self.base, self.grid, self.seeds, Path(out).resolve(), self.dataset)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_config": self.base.to_dict(),
                "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in self.grid.items()},
                "grid_order": list(self.grid), "seeds": list(self.seeds), "dataset": self.dataset,
                "labels": self.labels()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        try:
            grid = data["grid"]
            order = data.get("grid_order", list(grid))  # JSON objects may come back sorted
            return cls(data["kind"], SACConfig.from_dict(data["base_config"]),
                       normalize_grid({name: grid[name] for name in order}),
                       tuple(int(s) for s in data["seeds"]), data.get("dataset"))
        except (KeyError, TypeError) as e:
            raise SaclabError(f"malformed sweep description (missing or bad {e})") from None

    def differences(self, other: Experiment) -> list[str]:
        """Names of what differs from ``other`` (base fields that the grid sets are ignored)."""
        diffs = [n for n in ("kind", "seeds", "dataset") if getattr(self, n) != getattr(other, n)]
        if list(self.grid.items()) != list(other.grid.items()):  # the order names the directories
            diffs.insert(1, "grid")
        mine, theirs = self.base.to_dict(), other.base.to_dict()
        diffs += [f"base {k}" for k in mine if k not in self.grid and mine[k] != theirs[k]]
        return diffs

    def save(self, out: str | os.PathLike) -> Path:
        """Write ``out/sweep.json`` atomically."""
        from saclab.files import write_json
        from saclab.version import __version__

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / EXPERIMENT_FILE
        write_json(path, {**self.to_dict(), "saclab_version": __version__})
        return path


def load_experiment(out: str | os.PathLike) -> Experiment | None:
    """The experiment described in ``out/sweep.json`` (None if there is none)."""
    path = Path(out) / EXPERIMENT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SaclabError(f"unreadable {path}: {e}".splitlines()[0]) from None
    return Experiment.from_dict(data)


def prepare(experiment: Experiment, out: str | os.PathLike) -> bool:
    """Claim ``out`` for ``experiment``: write ``sweep.json``, or check the one there.

    Returns True when resuming.  Refuses a different experiment, and a
    non-empty directory that holds no sweep.
    """
    out = Path(out)
    saved = load_experiment(out)
    if saved is not None:
        diffs = experiment.differences(saved)
        if diffs:
            raise SaclabError(f"{out} holds a different sweep (differs in {', '.join(diffs[:4])}"
                              f"{', ...' if len(diffs) > 4 else ''}); rerun the same command to resume it "
                              "or choose another --out")
        return True
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SaclabError(f"{out} exists and holds no sweep.json; choose another --out")
    experiment.save(out)
    return False


def sweep(
    kind: str,
    base_config: SACConfig,
    grid: Mapping[str, Sequence[Any]] | None,
    seeds: int | Sequence[int],
    out: str | os.PathLike,
    dataset: str | os.PathLike | None = None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    on_done: Callable[[JobOutcome], None] | None = None,
) -> list[JobOutcome]:
    """Run (or resume) a sweep: ``base_config`` with each combination of ``grid``, times ``seeds``.

    Args:
        kind: "online" or "offline".
        base_config: the configuration the grid changes.
        grid: SACConfig field -> values (strings are parsed by the field's type).
        seeds: a number of seeds (0, 1, ...) or the seeds themselves.
        out: the sweep directory: ``sweep.json`` and ``<label>/seed-N/`` run directories.
        dataset: the dataset file of an offline sweep.
        backend: "local" (process pool) or "ray".
        workers: local processes (default one per core).
        address: Ray cluster address (None: a local Ray instance).
        on_done: called with each ``JobOutcome`` as it finishes.

    Returns one ``JobOutcome`` per run (configuration-major, seeds innermost).
    Finished runs are skipped and interrupted ones resume from their checkpoint.
    """
    if backend not in BACKENDS:
        raise SaclabError(f"unknown backend {backend!r} (choose local or ray)")
    experiment = Experiment.create(kind, base_config, grid, seeds, dataset)
    if experiment.dataset is not None and not Path(experiment.dataset).is_file():
        raise SaclabError(f"dataset not found: {experiment.dataset}")
    if backend == "ray":
        from saclab.launch.ray_backend import import_ray

        import_ray()  # a missing Ray is an error before anything is written
    prepare(experiment, out)
    return run_jobs(experiment.jobs(out), backend, workers, address, on_done)


__all__ = ["Job", "JobOutcome", "Experiment", "run_job", "run_job_safely", "run_jobs", "seed_jobs", "grid_jobs",
           "grid_label", "grid_labels", "parse_grid", "parse_value", "load_experiment", "sweep", "default_workers",
           "EXPERIMENT_FILE"]
