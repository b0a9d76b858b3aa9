"""``saclab sweep`` and ``saclab summarize``: grids of runs, and their statistics.

    saclab sweep online|offline [--preset P] [config flags] --set FIELD=V1,V2,... [--set ...]
                 --seeds N [--seed S] [--dataset FILE] [--out DIR] [--backend local|ray]
                 [--address ADDR] [--workers N]
    saclab summarize DIR [--x step|episode|epoch]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from saclab.cli.common import PresetName, check_output_dir, have_returns, parse, with_preset
from saclab.config import SACConfig
from saclab.errors import SaclabError
from saclab.launch.jobs import KINDS, JobOutcome
from saclab.launch.sweep import Experiment


@dataclass
class SweepArgs:
    """Run a grid of configurations times seeds (online, or offline on a dataset), locally or on Ray.

    The flags of the config set the base configuration; each --set FIELD=V1,V2,...
    sweeps one field (values parsed by its type; hidden sizes as 128x128).  Rerun
    the same command with the same --out to resume; `saclab summarize OUT` prints the statistics.
    """

    config: SACConfig
    preset: PresetName = "default"
    """Hyperparameter preset; the flags below override it."""
    set: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """A swept field and its values, FIELD=V1,V2,... (repeat --set for a grid over several fields)."""
    seeds: int = 1
    """Seeds per configuration (seed, seed+1, ...)."""
    seed: int = 0
    """First seed."""
    dataset: Path | None = None
    """Offline sweeps: the dataset file (HDF5, see `saclab dataset`)."""
    out: Path | None = None
    """Sweep directory (default runs/sweep-KIND-ENV-TIME); the same --out resumes."""
    backend: Literal["local", "ray"] = "local"
    """local: a process pool on this machine; ray: Ray tasks (pip install 'saclab[ray]')."""
    address: str | None = None
    """Ray: the cluster address (e.g. ray://head:10001 or auto; default: a local Ray instance)."""
    workers: int = 0
    """local: parallel processes (0 = one per core)."""


@dataclass
class SummarizeArgs:
    """Statistics of a sweep: per configuration, mean and IQM of the final and best return with
    95% bootstrap CIs; writes summary.csv, summary.md and curves.png in the directory."""

    directory: Annotated[Path, tyro.conf.Positional]
    """The sweep directory (its sweep.json, or */seed-N/ run directories)."""
    x: Literal["step", "episode", "epoch"] | None = None
    """X axis of curves.png (default: epoch for offline runs, else step or episode)."""


def _report(total: int) -> Callable[[JobOutcome], None]:
    done = [0]

    def on_done(outcome: JobOutcome) -> None:
        done[0] += 1
        job = outcome.job
        name = "/".join(Path(job.run_dir).parts[-2:])
        if outcome.ok:
            from saclab.runs.offline_records import describe

            s = outcome.summary or {}
            result = describe(s) if s.get("simulator") is False else (
                f"final {s.get('final_return', float('nan')):.1f}, best {s.get('best_return', float('nan')):.1f}")
            print(f"  [{done[0]}/{total}] done  {name}: {result}", file=sys.stderr, flush=True)
        else:
            print(f"  [{done[0]}/{total}] FAIL  {name}: {outcome.error}", file=sys.stderr, flush=True)

    return on_done


def cmd_sweep(argv: list[str]) -> int:
    from saclab.launch.grid import parse_grid
    from saclab.launch.jobs import default_workers
    from saclab.launch.pool import run_jobs
    from saclab.launch.sweep import prepare
    from saclab.locks import directory_lock

    if not argv or argv[0] not in KINDS:
        if any(a in ("-h", "--help") for a in argv):
            with_preset(SweepArgs, argv, "saclab sweep online|offline")
        got = f" (got {argv[0]!r})" if argv else ""
        raise SaclabError(f"say what to sweep: saclab sweep online|offline [options]{got}")
    kind, rest = argv[0], argv[1:]
    args = with_preset(SweepArgs, rest, f"saclab sweep {kind}")
    if args.seeds < 1:
        raise SaclabError(f"--seeds must be >= 1, got {args.seeds}")
    if args.workers < 0:
        raise SaclabError(f"--workers must be >= 0, got {args.workers}")
    if args.backend != "ray" and args.address is not None:
        raise SaclabError("--address needs --backend ray")
    if kind == "offline" and args.dataset is None:
        raise SaclabError("an offline sweep needs --dataset FILE")
    if kind == "online" and args.dataset is not None:
        raise SaclabError("--dataset is for offline sweeps")
    if args.dataset is not None and not args.dataset.is_file():
        raise SaclabError(f"dataset not found: {args.dataset}")
    if args.backend == "ray":
        from saclab.launch.ray_backend import import_ray

        import_ray()  # fail now, not after the set-up
    grid = parse_grid(args.set)
    seeds = list(range(args.seed, args.seed + args.seeds))
    config, data_spec = args.config, None
    if kind == "offline":
        config, data_spec = _offline_env(config, args.dataset, any(a == "--env" or a.startswith("--env=")
                                                                   for a in rest))
    experiment = Experiment.create(kind, config, grid, seeds, args.dataset)
    _check_envs(experiment, args.workers or default_workers(), data_spec)
    out = check_output_dir(args.out or Path("runs") / f"sweep-{kind}-{config.env or 'no-env'}-"
                                                     f"{time.strftime('%Y%m%d-%H%M%S')}")
    with directory_lock(out, "sweep"):  # before sweep.json is written: a second sweep here is refused
        resuming = prepare(experiment, out)
        jobs = experiment.jobs(out)
        configs = len(experiment.labels())
        print(f"saclab sweep: {'resuming ' if resuming else ''}{kind}, {configs} configuration(s) x {len(seeds)} "
              f"seed(s) = {len(jobs)} runs, backend {args.backend} -> {out}", file=sys.stderr, flush=True)
        try:
            outcomes = run_jobs(jobs, args.backend, args.workers or None, args.address, on_done=_report(len(jobs)))
        except KeyboardInterrupt:
            print(f"saclab sweep: interrupted; runs keep their last checkpoint: rerun the same command "
                  f"(--out {out}) to resume", file=sys.stderr)
            return 130
        _summarize(out)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SaclabError(f"{len(failed)} of {len(outcomes)} runs failed, first: "
                          f"{failed[0].job.run_dir}: {failed[0].error}; rerun the same command to retry them")
    return 0


def _offline_env(config: SACConfig, dataset_path: Path, env_given: bool) -> tuple[SACConfig, object]:
    """As ``saclab offline``: without --env the dataset's env, or none for a dataset that names none
    (your own logs); and the sizes a run without an env takes from the dataset."""
    from saclab.core.types import EnvSpec
    from saclab.data.dataset import Dataset
    from saclab.envs.make import check_env_id_from_file

    dataset = Dataset.load(dataset_path)
    if not env_given:
        env = check_env_id_from_file(dataset.env_id, f"dataset {dataset_path}") if dataset.env_id else ""
        config = config.replace(env=env)
    return config, EnvSpec("", dataset.obs_dim, dataset.num_actions)


def _check_envs(experiment: Experiment, workers: int, data_spec: object = None) -> None:
    """Refuse an unknown or unsupported environment, or a configuration that could not finish,
    before any run starts (``data_spec``: the sizes of a run without an env)."""
    from saclab.envs.make import env_spec
    from saclab.runs.preflight import check_run

    specs = {env: env_spec(env) if env else data_spec
             for env in sorted({config.env for _, config in experiment.configs()})}
    for _, config in experiment.configs():
        check_run(config, experiment.seeds, specs[config.env], online=experiment.kind == "online",
                  parallel_runs=workers)


def _summarize(directory: Path, x: str | None = None) -> None:
    from saclab.analysis.runfiles import sweep_groups
    from saclab.analysis.summary import format_table, summarize_directory

    groups = sweep_groups(directory)
    if not have_returns([run for runs in groups.values() for run in runs]):
        from saclab.analysis import offline_summary

        rows = [offline_summary.summarize_offline_group(runs, label) for label, runs in groups.items()]
        paths = offline_summary.write_offline_summary(rows, directory, title=f"Sweep {directory.name} (no simulator)")
        print(f"saclab: no returns in {directory} (runs trained without a simulator): their offline metrics "
              "at the last epoch", file=sys.stderr)
        print(offline_summary.format_offline_table(rows))
        print(f"saclab: {', '.join(str(p) for p in paths)}", file=sys.stderr)
        return
    rows, paths = summarize_directory(directory, x=x)
    print(format_table(rows))
    print(f"saclab: {', '.join(str(p) for p in paths)}", file=sys.stderr)


def cmd_summarize(argv: list[str]) -> int:
    args = parse(SummarizeArgs, argv, "saclab summarize")
    _summarize(args.directory, args.x)
    return 0


__all__ = ["cmd_sweep", "cmd_summarize", "SweepArgs", "SummarizeArgs"]
