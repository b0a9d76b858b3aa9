"""The ``saclab`` command.

Each subcommand's flags come from a dataclass (tyro), so ``--help`` shows
every option with its default; ``--preset`` picks the defaults the other
flags override.  Errors print one line, ``saclab <cmd>: error: ...``, and exit 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import tyro

from saclab.config import SACConfig, preset
from saclab.errors import SaclabError

PresetName = Literal["default", "notebook", "test"]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# Argument dataclasses
# ---------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class RunArgs:
    """What every training command shares: preset, seeds, run directory, resume, workers."""

    preset: PresetName = "default"
    """Hyperparameter preset; the flags below override it."""
    seed: int = 0
    """First seed."""
    seeds: int = 1
    """Number of seeds (seed, seed+1, ...), run in parallel processes."""
    out: Path | None = None
    """Run directory (default runs/KIND-ENV-TIME)."""
    resume: bool = False
    """Continue an interrupted run in --out from its checkpoint."""
    workers: int = 0
    """Parallel processes for several seeds (0 = one per core)."""


@dataclass(kw_only=True)
class TrainArgs(RunArgs):
    """Train discrete SAC online (one run per seed, seeds in parallel processes)."""

    config: SACConfig


@dataclass
class EvaluateArgs:
    """Evaluate a checkpoint's greedy policy."""

    checkpoint: Annotated[Path, tyro.conf.Positional]
    """Run directory or checkpoint directory."""
    episodes: int = 100
    """Evaluation episodes (run in one vector env)."""
    seed: int = 0
    """Seed of the evaluation episodes."""
    max_steps: int = 0
    """Episode cap (0 = the run's max_episode_steps)."""


@dataclass
class PlotArgs:
    """Plot evaluation curves: the mean across the seeds of each run directory with a 95% bootstrap band."""

    runs: Annotated[tuple[Path, ...], tyro.conf.Positional]
    """Run directories (each holding seed-*/ or one run)."""
    out: Path | None = None
    """PNG file (default RUN/curve.png)."""
    x: Literal["step", "episode", "epoch"] | None = None
    """X axis (default: epoch for offline runs, episode for the notebook preset, else step)."""
    title: str = ""
    """Figure title."""


# ---------------------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------------------
def _preset_from_argv(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--preset="):
            return arg.split("=", 1)[1]
    return "default"


def parse(cls: type[T], argv: list[str], prog: str, default: T | None = None) -> T:
    """tyro parsing with errors reduced to one line (help is printed as tyro renders it)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            return tyro.cli(tyro.conf.OmitArgPrefixes[cls], args=argv, prog=prog, default=default)
    except SystemExit as e:
        text = captured.getvalue()
        if not e.code:
            sys.stdout.write(text)
            raise
        raise SaclabError(_one_line(text)) from None


def _one_line(text: str) -> str:
    """tyro's boxed error as one line: the block after the title, up to the next rule."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        line = re.sub(r"^[\s│|╭╰]+|[\s│|╮╯]+$", "", line)
        if re.fullmatch(r"[-─━ ]{3,}", line) or re.match(r"^[─━-]+ .* [─━-]+$", line):
            blocks.append([])
        elif line:
            blocks[-1].append(line)
    blocks = [b for b in blocks if b]
    message = blocks[1] if len(blocks) > 1 else (blocks[0] if blocks else [])
    return " ".join(message) or "invalid arguments (see --help)"


def _with_preset(cls: type[T], argv: list[str], prog: str, **fields: object) -> T:
    name = _preset_from_argv(argv)
    base = preset(name)
    return parse(cls, argv, prog, default=cls(config=base, preset=name, **fields))  # type: ignore[call-arg]


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------
def cmd_train(argv: list[str]) -> int:
    from saclab.envs.make import env_spec
    from saclab.runs.online import check_resumable, train_online
    from saclab.runs.run import default_run_dir

    args = _with_preset(TrainArgs, argv, "saclab train")
    if args.seeds < 1:
        raise SaclabError(f"--seeds must be >= 1, got {args.seeds}")
    config = args.config
    env_spec(config.env)  # refuse a bad env before anything starts
    out = args.out or default_run_dir("online", config, args.seed).parent
    if args.resume and not out.exists():
        raise SaclabError(f"--resume: run directory {out} does not exist")
    if not args.resume and (out / f"seed-{args.seed}" / "checkpoint").exists():
        raise SaclabError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.resume:
        for s in seeds:
            check_resumable(out / f"seed-{s}", config, s)
    print(f"saclab train: {config.env}, preset {args.preset}, seeds {seeds} -> {out}", file=sys.stderr)
    if len(seeds) == 1:
        result = train_online(config, seeds[0], out / f"seed-{seeds[0]}", resume=args.resume)
        _print({"run_dir": str(result.dir), **result.summary})
    else:
        from saclab.launch.jobs import seed_jobs
        from saclab.launch.pool import run_jobs

        outcomes = run_jobs(seed_jobs("online", config, seeds, out), workers=args.workers or None,
                            on_done=_report_outcome)
        if any(not o.ok for o in outcomes):
            raise SaclabError(f"{sum(not o.ok for o in outcomes)} of {len(outcomes)} runs failed (see above)")
    _plot_default(out)
    return 0


def _report_outcome(outcome) -> None:
    job = outcome.job
    if outcome.ok:
        s = outcome.summary
        print(f"  done  {job.run_dir}: final {s['final_return']:.1f}, best {s['best_return']:.1f}", file=sys.stderr)
    else:
        print(f"  FAIL  {job.run_dir}: {outcome.error}", file=sys.stderr)


def _plot_default(out: Path) -> None:
    try:
        from saclab.analysis.plots import plot_curves
        from saclab.analysis.runfiles import seed_dirs

        x = _default_x(out)
        path = plot_curves({out.name: seed_dirs(out)}, out / "curve.png", x=x)
        print(f"saclab: curve -> {path}", file=sys.stderr)
    except SaclabError:
        pass


def _default_x(run: Path) -> str:
    from saclab.analysis.runfiles import curve_axis, seed_dirs

    return curve_axis(seed_dirs(run)[0])


def cmd_evaluate(argv: list[str]) -> int:
    import numpy as np

    from saclab.runs.policy import Policy

    args = parse(EvaluateArgs, argv, "saclab evaluate")
    if args.episodes < 1:
        raise SaclabError(f"--episodes must be >= 1, got {args.episodes}")
    policy = Policy.load(args.checkpoint)
    returns = policy.evaluate(args.episodes, args.seed, args.max_steps or None)
    _print({"checkpoint": str(policy.path), "env": policy.config.env, "episodes": args.episodes,
            "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "return_min": float(np.min(returns)), "return_max": float(np.max(returns))})
    return 0


def cmd_plot(argv: list[str]) -> int:
    from saclab.analysis.plots import plot_curves
    from saclab.analysis.runfiles import seed_dirs

    args = parse(PlotArgs, argv, "saclab plot")
    if not args.runs:
        raise SaclabError("give at least one run directory")
    for run in args.runs:
        if not run.exists():
            raise SaclabError(f"run directory not found: {run}")
    x = args.x or _default_x(args.runs[0])
    out = args.out or args.runs[0] / "curve.png"
    groups = {run.name or str(run): seed_dirs(run) for run in args.runs}
    path = plot_curves(groups, out, x=x, title=args.title)
    if path is None:
        raise SaclabError("no evaluations to plot yet")
    print(path)
    return 0


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int] | str]] = {
    "train": ("train SAC online on a Gymnasium env (several seeds in parallel)", cmd_train),
    "evaluate": ("evaluate a checkpoint's greedy policy", cmd_evaluate),
    "plot": ("plot evaluation curves (mean and 95% bootstrap CI over seeds)", cmd_plot),
}


def register(name: str, help_text: str, target: str) -> None:
    """Add a subcommand implemented as ``module:function`` (imported on use)."""
    COMMANDS[name] = (help_text, target)


register("offline", "train SAC or CQL-SAC offline on a dataset", "saclab.cli.offline:cmd_offline")
register("collect", "collect a dataset with a checkpoint or a random policy", "saclab.cli.offline:cmd_collect")
register("dataset", "dataset tools: info | export | import (Minari)", "saclab.cli.offline:cmd_dataset")
register("sweep", "grid x seeds of online or offline runs (local processes or Ray)", "saclab.cli.sweep:cmd_sweep")
register("summarize", "table of a sweep: mean, IQM and 95% CIs per configuration", "saclab.cli.sweep:cmd_summarize")
register("study", "the notebook study end to end, with a written report", "saclab.cli.study:cmd_study")
register("report", "rebuild a study's report from its logged runs", "saclab.cli.study:cmd_report")


def _resolve(target: Callable[[list[str]], int] | str) -> Callable[[list[str]], int]:
    if callable(target):
        return target
    import importlib

    module, function = target.split(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        raise SaclabError(f"this command is not available in this installation ({target})") from None


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: saclab <command> [options]   (saclab <command> --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (text, _) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from saclab.version import __version__

        print(f"saclab {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"saclab: error: unknown command {name!r} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    try:
        return _resolve(COMMANDS[name][1])(rest)
    except SaclabError as e:
        print(f"saclab {name}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"saclab {name}: interrupted; the last checkpoint is kept (rerun with --resume to continue)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "register", "parse", "TrainArgs", "EvaluateArgs", "PlotArgs"]
