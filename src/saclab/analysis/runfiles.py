"""Finding runs on disk for analysis: seed directories, sweep groups, a study's layout, a run's x axis.

Analysis reads what runs, sweeps and studies wrote (``config.json``,
``evaluations.csv``, ``sweep.json``, ``study.json``) with its own small readers,
so it never imports the code that launches runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saclab.errors import SaclabError
from saclab.runs.runlog import read_json_object, read_run_config

SWEEP_FILE = "sweep.json"  # written by saclab.launch.sweep.Experiment.save
STUDY_FILE = "study.json"  # written by saclab.launch.study


def seed_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """The per-seed run directories under ``run_dir`` (or ``run_dir`` itself if it is one run)."""
    run_dir = Path(run_dir)
    if (run_dir / "evaluations.csv").is_file():
        return [run_dir]
    found = sorted(p.parent for p in run_dir.glob("seed-*/evaluations.csv"))
    if not found:
        raise SaclabError(f"no evaluations found in {run_dir} (expected evaluations.csv or seed-*/evaluations.csv)")
    return found


def curve_axis(run_dir: str | os.PathLike) -> str:
    """The natural x axis of a run: epoch (offline), episode (an episode budget) or step."""
    meta = read_run_config(run_dir) or {}
    if meta.get("kind") == "offline":
        return "epoch"
    config = meta.get("config", {})
    return "episode" if config.get("total_episodes") and not config.get("total_steps") else "step"


def _sweep_labels(directory: Path) -> tuple[list[str], list[int]] | None:
    """(labels, seeds) from ``directory/sweep.json``; None without one."""
    path = directory / SWEEP_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SaclabError(f"unreadable {path}: {e}".splitlines()[0]) from None
    labels, seeds = (data.get("labels"), data.get("seeds")) if isinstance(data, dict) else (None, None)
    if not (isinstance(labels, list) and labels and all(_is_relative_name(label) for label in labels)
            and isinstance(seeds, list) and seeds and all(_is_seed(s) for s in seeds)):
        raise SaclabError(f"malformed {path}: it needs labels (directory names) and seeds (integers)")
    return labels, seeds


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_relative_name(value: Any) -> bool:
    """A path that stays inside the directory that holds it (no absolute path, no ``..``)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return False
    path = Path(value)
    return not path.is_absolute() and ".." not in path.parts


def sweep_groups(directory: str | os.PathLike) -> dict[str, list[Path]]:
    """Groups of a sweep directory: label -> its ``seed-N`` run directories.

    With a ``sweep.json`` the labels and seeds are the experiment's (in its
    order, runs not started yet included); otherwise every directory holding
    ``seed-*`` runs is a group, labelled by its path relative to ``directory``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SaclabError(f"sweep directory not found: {directory}")
    described = _sweep_labels(directory)
    if described is not None:
        labels, seeds = described
        return {label: [directory / label / f"seed-{s}" for s in seeds] for label in labels}
    found: dict[str, list[Path]] = {}
    for marker in sorted(directory.glob("**/seed-*/config.json")):
        run = marker.parent
        parent = run.parent
        label = directory.name if parent == directory else parent.relative_to(directory).as_posix()
        found.setdefault(label, []).append(run)
    if not found:
        raise SaclabError(f"no runs found in {directory} (expected sweep.json or */seed-N/ run directories)")
    return {label: sorted(runs, key=_seed_number) for label, runs in found.items()}


def _seed_number(run: Path) -> tuple[int, str]:
    suffix = run.name.removeprefix("seed-")
    return (int(suffix), "") if suffix.isdigit() else (1 << 30, run.name)


@dataclass(frozen=True)
class StudyFiles:
    """Where a study's runs and datasets are, as its ``study.json`` records them.

    ``plan``: the plan (presets, seeds, budgets, ``env``); ``groups``: group name
    (``online``, ``replay/sac``, ``replay/cql``, ``<tier>/<agent>``, ``sweep/<weight>``)
    -> run directories; ``datasets``: name (``replay seed N``, a tier) -> HDF5 file.
    """

    directory: Path
    plan: dict[str, Any]
    groups: dict[str, list[Path]]
    datasets: dict[str, Path]

    @property
    def env(self) -> str:
        return str(self.plan.get("env") or self.plan["online"]["env"])


def _is_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def read_study(directory: str | os.PathLike) -> StudyFiles:
    """The layout of the study in ``directory`` (paths in ``study.json`` are relative to it)."""
    directory = Path(directory)
    path = directory / STUDY_FILE
    if not path.is_file():
        raise SaclabError(f"{directory} is not a study directory (no {STUDY_FILE})")
    data = read_json_object(path)
    if "groups" not in data or "datasets" not in data:
        raise SaclabError(f"{path} lists no runs (written by an older saclab): run `saclab report {directory}`, "
                          "which records them")
    plan = {k: v for k, v in data.items() if k not in ("groups", "datasets")}
    groups, datasets = data["groups"], data["datasets"]  # [name, paths] pairs, in the study's order
    if not (isinstance(groups, list) and all(_is_pair(g) and isinstance(g[1], list)
                                             and all(_is_relative_name(r) for r in g[1]) for g in groups)
            and isinstance(datasets, list) and all(_is_pair(d) and _is_relative_name(d[1]) for d in datasets)
            and isinstance(plan.get("online"), dict) and isinstance(plan.get("env", ""), str)):
        raise SaclabError(f"malformed {path}: groups and datasets must be [name, paths] pairs inside the study, "
                          "and online a config")
    groups, datasets = dict(groups), dict(datasets)
    return StudyFiles(directory, plan, {name: [directory / r for r in runs] for name, runs in groups.items()},
                      {name: directory / p for name, p in datasets.items()})


__all__ = ["seed_dirs", "curve_axis", "sweep_groups", "read_study", "StudyFiles", "SWEEP_FILE", "STUDY_FILE"]
