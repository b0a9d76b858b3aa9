"""``saclab study`` and ``saclab report``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from saclab.cli.main import parse
from saclab.errors import SaclabError


@dataclass
class StudyArgs:
    """Run the notebook's study end to end (online SAC, datasets, offline SAC and CQL, a CQL-weight
    sweep) and write a report that answers its questions with this run's numbers.  Rerunning the
    same command resumes: finished runs are kept."""

    preset: Literal["default", "notebook", "test"] = "default"
    """Hyperparameters of every agent (the notebook preset is the notebook's exact values)."""
    quick: bool = False
    """Every phase with small budgets: a few minutes on a 2-core CPU."""
    out: Path | None = None
    """Study directory (default runs/study-PRESET[-quick])."""
    backend: Literal["local", "ray"] = "local"
    """Where runs execute: local processes, or Ray (--address for a cluster)."""
    address: str | None = None
    """Ray cluster address (default: a local Ray instance)."""
    workers: int = 0
    """Parallel runs for the local backend (0 = one per core)."""


@dataclass
class ReportArgs:
    """Rebuild a study's report (report.md, report.html, numbers.json) from its logged runs."""

    study: Annotated[Path, tyro.conf.Positional]
    """Study directory."""


def cmd_study(argv: list[str]) -> int:
    from saclab.launch.study import plan_study, run_study

    args = parse(StudyArgs, argv, "saclab study")
    if args.workers < 0:
        raise SaclabError(f"--workers must be >= 0, got {args.workers}")
    out = args.out or Path("runs") / f"study-{args.preset}{'-quick' if args.quick else ''}"
    started = time.perf_counter()
    report = run_study(plan_study(args.preset, args.quick), out, args.backend, args.workers or None, args.address)
    print(f"report: {report} and {report.with_suffix('.html')} ({(time.perf_counter() - started) / 60:.1f} min)")
    return 0


def cmd_report(argv: list[str]) -> int:
    from saclab.analysis.report import write_report
    from saclab.launch.study import PLAN_FILE

    args = parse(ReportArgs, argv, "saclab report")
    if not (args.study / PLAN_FILE).is_file():
        raise SaclabError(f"{args.study} is not a study directory (no {PLAN_FILE})")
    print(write_report(args.study))
    return 0
