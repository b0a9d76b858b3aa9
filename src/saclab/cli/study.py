"""``saclab study`` and ``saclab report``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from saclab.cli.common import check_output_dir, parse
from saclab.errors import SaclabError
from saclab.locks import directory_lock


@dataclass
class StudyArgs:
    """Run the notebook's study end to end (online SAC, datasets, offline SAC and CQL, a CQL-weight
    sweep) and write a report that answers its questions with this run's numbers.  Rerunning the
    same command resumes: finished runs are kept."""

    preset: Literal["default", "notebook", "notebook-faithful", "test"] = "default"
    """Hyperparameters of every agent (the notebook preset is the notebook's exact values)."""
    env: str | None = None
    """Gymnasium env id, any Discrete-action env with flat observations (default: the preset's,
    CartPole-v1).  Episodes are capped at the env's registered limit (200 steps on CartPole-v1
    and under the notebook preset, as the notebook)."""
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
    from saclab.config import preset
    from saclab.launch.plan import plan_study
    from saclab.launch.study import run_study

    args = parse(StudyArgs, argv, "saclab study")
    if args.workers < 0:
        raise SaclabError(f"--workers must be >= 0, got {args.workers}")
    plan = plan_study(args.preset, args.quick, args.env)
    env = "" if plan.env == preset(args.preset).env else "-" + plan.env.replace("/", "_").replace(":", "_")
    out = args.out or Path("runs") / f"study-{args.preset}{env}{'-quick' if args.quick else ''}"
    if args.backend == "ray":
        from saclab.launch.ray_backend import import_ray

        import_ray()  # refuse before study.json or the speed measurement
    check_output_dir(out)
    started = time.perf_counter()
    with directory_lock(out, "study"):
        report = run_study(plan, out, args.backend, args.workers or None, args.address)
    print(f"report: {report} and {report.with_suffix('.html')} ({(time.perf_counter() - started) / 60:.1f} min)")
    return 0


def cmd_report(argv: list[str]) -> int:
    from saclab.analysis.report import write_report
    from saclab.launch.study import load_plan, write_plan

    args = parse(ReportArgs, argv, "saclab report")
    plan = load_plan(args.study)
    with directory_lock(args.study, "study"):
        write_plan(plan, args.study)  # records the run groups in a study.json from an older saclab
        print(write_report(args.study))
    return 0
