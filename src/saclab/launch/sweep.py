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

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saclab.config import SACConfig
from saclab.errors import SaclabError
from saclab.files import write_json
from saclab.launch.grid import grid_configs, grid_jobs, grid_labels, normalize_grid
from saclab.launch.jobs import KINDS, Job, JobOutcome
from saclab.launch.pool import BACKENDS, run_jobs
from saclab.locks import LOCK_FILES, directory_lock
from saclab.runs.schema import config_from_json
from saclab.version import __version__

EXPERIMENT_FILE = "sweep.json"


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
        return [(label, config) for label, config, _ in grid_configs(self.base, self.grid)]

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
    def from_dict(cls, data: Any, source: str = "sweep description") -> Experiment:
        """The experiment a ``sweep.json`` describes, each field checked (a one-line error names the first
        bad one)."""
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise SaclabError(f"malformed {source}: {what}")

        need(isinstance(data, dict), "not a JSON object")
        need(data.get("kind") in KINDS, f"kind must be one of {', '.join(KINDS)}")
        grid = data.get("grid")
        need(isinstance(grid, dict) and all(isinstance(v, list) and v for v in grid.values()),
             "grid must map fields to lists of values")
        order = data.get("grid_order", list(grid))  # JSON objects may come back sorted
        need(isinstance(order, list) and all(isinstance(name, str) for name in order)
             and sorted(order) == sorted(grid), "grid_order must list the grid's fields")
        seeds = data.get("seeds")
        need(isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                       for s in seeds), "seeds must be non-negative integers")
        need(data.get("dataset") is None or isinstance(data.get("dataset"), str), "dataset must be a path")
        base = config_from_json(data.get("base_config"), f"malformed {source}: base_config")
        try:
            return cls(data["kind"], base, normalize_grid({name: grid[name] for name in order}), tuple(seeds),
                       data.get("dataset"))
        except (TypeError, ValueError, KeyError) as e:
            raise SaclabError(f"malformed {source}: {e}".splitlines()[0]) from None

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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SaclabError(f"unreadable {path}: {e}".splitlines()[0]) from None
    return Experiment.from_dict(data, str(path))


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
    if out.exists() and (not out.is_dir() or any(p.name not in LOCK_FILES for p in out.iterdir())):
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
    with directory_lock(out, "sweep"):
        prepare(experiment, out)
        return run_jobs(experiment.jobs(out), backend, workers, address, on_done)


__all__ = ["Experiment", "load_experiment", "prepare", "sweep", "EXPERIMENT_FILE"]
