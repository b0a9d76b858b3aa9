"""``saclab train``, ``saclab evaluate`` and ``saclab plot``."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from saclab.cli.common import (
    NO_RETURNS,
    RunArgs,
    check_output_dir,
    check_output_file,
    default_x,
    have_returns,
    parse,
    plot_default,
    print_json,
    run_seeds,
    with_preset,
)
from saclab.config import SACConfig
from saclab.errors import SaclabError


@dataclass(kw_only=True)
class TrainArgs(RunArgs):
    """Train discrete SAC online (one run per seed, seeds in parallel processes)."""

    config: SACConfig
    vmap: bool = False
    """Train the seeds as one compiled program with jax.vmap (gymnax envs; the GPU path: on a CPU the
    process pool is faster)."""


@dataclass
class EvaluateArgs:
    """Evaluate a checkpoint's greedy policy."""

    checkpoint: Annotated[Path, tyro.conf.Positional]
    """Run directory, checkpoint directory, or an exported policy directory (saclab export; needs --env)."""
    episodes: int = 100
    """Evaluation episodes (run in one vector env)."""
    seed: int = 0
    """Seed of the evaluation episodes."""
    max_steps: int = 0
    """Episode cap (0 = the run's max_episode_steps)."""
    env: str | None = None
    """The env the checkpoint must have been trained on (needed to trust a checkpoint naming module:Env); for a run
    trained without a simulator or an exported policy, the env to evaluate it in."""


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


def cmd_train(argv: list[str]) -> int:
    from saclab.envs.gymnax_envs import is_gymnax
    from saclab.envs.make import env_spec
    from saclab.locks import directory_lock
    from saclab.runs.online import check_resumable, train_online
    from saclab.runs.preflight import check_run
    from saclab.runs.run import default_run_dir, holds_run

    args = with_preset(TrainArgs, argv, "saclab train")
    if args.config.algo != "sac":
        raise SaclabError(f"--algo {args.config.algo} is for saclab offline (it learns from a dataset)")
    if not args.config.env:
        raise SaclabError("saclab train needs a simulator: --env ID")
    if args.seeds < 1:
        raise SaclabError(f"--seeds must be >= 1, got {args.seeds}")
    config = args.config
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.vmap and args.workers:
        raise SaclabError("--workers is for the process pool; --vmap trains all seeds in this process")
    if args.vmap and not is_gymnax(config.env):
        raise SaclabError("--vmap trains the seeds in one compiled program: it needs a gymnax env (--env gymnax:NAME)")
    spec = env_spec(config.env)  # refuse a bad env before anything starts
    check_run(config, seeds, spec, online=True,
              parallel_runs=len(seeds) if args.vmap else min(len(seeds), args.workers or len(seeds)))
    out = check_output_dir(args.out or default_run_dir("online", config, args.seed).parent)
    if args.resume and not out.is_dir():
        raise SaclabError(f"--resume: run directory {out} does not exist")
    with directory_lock(out, "run"):  # before anything is written; a second writer is refused
        taken = [s for s in seeds if holds_run(out / f"seed-{s}")]
        if taken and not args.resume:
            raise SaclabError(f"{out} already holds a run (seed {taken[0]}); pass --resume to continue it "
                              "or choose another --out")
        if args.resume:
            for s in seeds:
                check_resumable(out / f"seed-{s}", config, s)
        print(f"saclab train: {config.env}, preset {args.preset}, seeds {seeds} -> {out}", file=sys.stderr)
        if args.vmap:
            from saclab.runs.compiled_train import train_compiled_vmapped
            from saclab.runs.offline_records import describe

            with contextlib.ExitStack() as locks:
                for s in seeds:
                    locks.enter_context(directory_lock(out / f"seed-{s}", "run"))
                for result in train_compiled_vmapped(config, seeds, out, resume=args.resume):
                    print(f"  done  {result.dir}: {describe(result.summary)}", file=sys.stderr)
        elif len(seeds) == 1:
            with directory_lock(out / f"seed-{seeds[0]}", "run"):
                result = train_online(config, seeds[0], out / f"seed-{seeds[0]}", resume=args.resume)
            print_json({"run_dir": str(result.dir), **result.summary})
        else:
            run_seeds("online", config, seeds, out, args.workers)
        plot_default(out)
    return 0


def cmd_evaluate(argv: list[str]) -> int:
    from saclab.runs.policy import Policy
    from saclab.runs.preflight import MAX_COUNT, MAX_EVAL_EPISODES, check_seeds
    from saclab.runs.run import return_stats

    args = parse(EvaluateArgs, argv, "saclab evaluate")
    if not 1 <= args.episodes <= MAX_EVAL_EPISODES:
        raise SaclabError(f"--episodes must lie in [1, {MAX_EVAL_EPISODES}], got {args.episodes}")
    if not 0 <= args.max_steps <= MAX_COUNT:
        raise SaclabError(f"--max-steps must lie in [0, {MAX_COUNT}], got {args.max_steps}")
    check_seeds([args.seed])
    if (args.checkpoint / "policy.json").is_file():
        return _evaluate_exported(args)
    policy = Policy.load(args.checkpoint, env=args.env)
    returns = policy.evaluate(args.episodes, args.seed, args.max_steps or None)
    print_json({"checkpoint": str(policy.path), "env": policy.config.env, "episodes": args.episodes,
                **return_stats(returns)})
    return 0


def _evaluate_exported(args: EvaluateArgs) -> int:
    """Greedy episodes of an exported policy (saclab.inference, NumPy) in the env --env names."""
    from saclab.envs.evaluate import evaluate_policy
    from saclab.envs.make import env_spec, episode_cap
    from saclab.inference import load
    from saclab.runs.run import return_stats

    policy = load(args.checkpoint)
    if args.env is None:
        raise SaclabError(f"{args.checkpoint} is an exported policy: pass --env ID to evaluate it in a simulator")
    spec = env_spec(args.env)
    if (spec.obs_dim, spec.num_actions) != (policy.obs_dim, policy.num_actions):
        raise SaclabError(f"{args.checkpoint} has obs_dim={policy.obs_dim}, {policy.num_actions} actions; "
                          f"{args.env} has obs_dim={spec.obs_dim}, {spec.num_actions} actions")
    returns = evaluate_policy(policy, args.env, args.episodes, args.max_steps or episode_cap(args.env, 0), args.seed)
    print_json({"policy": str(args.checkpoint), "env": args.env, "episodes": args.episodes, **return_stats(returns)})
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
    x = args.x or default_x(args.runs[0])
    out = check_output_file(args.out or args.runs[0] / "curve.png")
    if out.is_dir():
        raise SaclabError(f"--out {out} is a directory, expected a PNG file")
    groups = {run.name or str(run): seed_dirs(run) for run in args.runs}
    if not have_returns([r for runs in groups.values() for r in runs]):
        raise SaclabError(f"no return curve to plot: {args.runs[0]} was {NO_RETURNS}")
    path = plot_curves(groups, out, x=x, title=args.title)
    if path is None:
        raise SaclabError("no evaluations to plot yet")
    print(path)
    return 0


__all__ = ["cmd_train", "cmd_evaluate", "cmd_plot", "TrainArgs", "EvaluateArgs", "PlotArgs"]
