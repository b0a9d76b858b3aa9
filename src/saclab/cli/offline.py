"""The ``saclab offline``, ``saclab collect`` and ``saclab dataset`` commands.

Every input is checked before anything is written: a missing or corrupt
file, a dataset of the wrong layout or environment, an empty one or one with
NaN rewards, an existing output -- each is one line and exit status 2, and no
existing file is overwritten.  Outputs are written atomically (temp + rename).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from saclab.cli.common import (
    RunArgs,
    check_output_dir,
    check_output_file,
    parse,
    plot_default,
    print_json,
    run_seeds,
    with_preset,
)
from saclab.config import SACConfig
from saclab.errors import SaclabError

if TYPE_CHECKING:
    from saclab.data.dataset import Dataset


# ---------------------------------------------------------------------------------------
# Argument dataclasses
# ---------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class OfflineArgs(RunArgs):
    """Train discrete SAC offline on a dataset (CQL-SAC with --cql-weight > 0, behaviour cloning with --algo bc);
    one run per seed.  --env defaults to the dataset's env; a dataset without one (your own logs) trains without a
    simulator (as does --env ''): held-out metrics instead of evaluation episodes (docs/own-logs.md)."""

    config: SACConfig
    dataset: Path | None = None
    """Dataset file (saclab HDF5: `saclab collect`, an online run's replay.h5, `saclab dataset import`)."""
    vmap: bool = False
    """Train the seeds in one process with jax.vmap (the GPU path; on CPU, process parallelism is faster)."""


@dataclass
class CollectArgs:
    """Collect a dataset by running a policy (or a data-quality tier) in a vector env."""

    out: Path | None = None
    """Output dataset file (.h5); never overwritten unless --force."""
    checkpoint: Path | None = None
    """Run or checkpoint directory of a trained agent (greedy/stochastic/epsilon; tiers expert/medium/replay)."""
    policy: Literal["greedy", "stochastic", "epsilon", "random"] = "greedy"
    """Behaviour policy (random needs no checkpoint)."""
    tier: Literal["random", "expert", "medium", "replay"] | None = None
    """Collect a standard tier instead of --policy (medium: epsilon-greedy, halfway from random to expert return)."""
    env: str | None = None
    """Gymnasium id (default: the checkpoint's env)."""
    episodes: int = 0
    """Collect this many complete episodes (one budget: --episodes or --steps)."""
    steps: int = 0
    """Or this many transitions."""
    epsilon: float | None = None
    """Probability of a uniformly random action (medium tier: skip the calibration)."""
    seed: int = 0
    """Seed of the env resets and every random draw."""
    max_episode_steps: int = 0
    """Episode cap, a time-limit truncation (0 = the env's registered limit)."""
    num_envs: int = 16
    """Sub-envs stepped in lockstep."""
    force: bool = False
    """Overwrite --out if it exists."""


@dataclass
class InfoArgs:
    """Print a dataset's size, returns, spaces and provenance as JSON."""

    file: Annotated[Path, tyro.conf.Positional]
    """Dataset file (saclab HDF5)."""


@dataclass
class ExportArgs:
    """Export a dataset to Minari's format (local files only)."""

    file: Annotated[Path, tyro.conf.Positional]
    """Dataset file (saclab HDF5)."""
    id: str = ""
    """Minari dataset id, (namespace/)name-vN, e.g. saclab/cartpole-expert-v0."""
    root: Path | None = None
    """Minari datasets directory (default $MINARI_DATASETS_PATH or ~/.minari/datasets)."""


@dataclass
class ImportArgs:
    """Import your own logs (.csv, .npz, .parquet; docs/own-logs.md) or a local Minari dataset as a saclab dataset."""

    source: Annotated[str, tyro.conf.Positional]
    """A log file (.csv, .npz, .parquet), a Minari dataset id (looked up under --root) or a Minari directory."""
    out: Path | None = None
    """Output dataset file (.h5); never overwritten unless --force."""
    columns: str = ""
    """Logs: your column names, ROLE=NAME,... (roles: action, reward, terminated, truncated, episode, observation,
    obs_ (the prefix of obs_0, obs_1, ...), obs_K)."""
    num_actions: int = 0
    """Logs: size of the action space (0 = the largest logged action + 1)."""
    reward_scale: float = 1.0
    """Logs: stored with the dataset; offline training multiplies the rewards by it."""
    root: Path | None = None
    """Minari datasets directory (default $MINARI_DATASETS_PATH or ~/.minari/datasets)."""
    force: bool = False
    """Overwrite --out if it exists."""


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def _new_output(path: Path | None, force: bool, flag: str = "--out") -> Path:
    """Check an output file path before any work: given, not a directory, not existing (unless force)."""
    if path is None:
        raise SaclabError(f"{flag} FILE is required")
    if path.is_dir():
        raise SaclabError(f"{flag} {path} is a directory, expected a file")
    if path.exists() and not force:
        raise SaclabError(f"{path} already exists (pass --force to overwrite it)")
    return check_output_file(path, flag)


def _flag_given(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


# ---------------------------------------------------------------------------------------
# saclab offline
# ---------------------------------------------------------------------------------------
def cmd_offline(argv: list[str]) -> int:
    from saclab.data.dataset import Dataset
    from saclab.envs.make import check_env_id_from_file
    from saclab.locks import directory_lock
    from saclab.runs.epochs import check_dataset
    from saclab.runs.held_out import validation_fraction
    from saclab.runs.preflight import check_run
    from saclab.runs.run import default_run_dir, holds_run

    args = with_preset(OfflineArgs, argv, "saclab offline")
    if args.dataset is None:
        raise SaclabError("--dataset FILE is required")
    if args.seeds < 1:
        raise SaclabError(f"--seeds must be >= 1, got {args.seeds}")
    if args.vmap and args.workers:
        raise SaclabError("--workers is for the process pool; --vmap trains all seeds in this process")
    dataset = Dataset.load(args.dataset)
    config = args.config
    if not _flag_given(argv, "--env"):
        # the dataset says which env it comes from (an id from a file may not name a module to import);
        # a dataset that names none (a log file) trains without a simulator
        env = check_env_id_from_file(dataset.env_id, f"dataset {args.dataset}") if dataset.env_id else ""
        config = config.replace(env=env)
    spec = check_dataset(dataset, config)
    if args.vmap and validation_fraction(config, int(dataset.episode_starts.sum())) > 0:
        raise SaclabError("--vmap shares one training set between the seeds, but each seed holds out its own "
                          "episodes: pass --validation-fraction 0, or train without --vmap")
    seeds = list(range(args.seed, args.seed + args.seeds))
    check_run(config, seeds, spec, online=False)
    out = check_output_dir(args.out or default_run_dir("offline", config, args.seed).parent)
    if args.resume and not out.is_dir():
        raise SaclabError(f"--resume: run directory {out} does not exist")
    with contextlib.ExitStack() as locks:  # the group's and every seed's directory: one writer each
        locks.enter_context(directory_lock(out, "run"))
        taken = [s for s in seeds if holds_run(out / f"seed-{s}")]
        if taken and not args.resume:
            raise SaclabError(f"{out} already holds a run (seed {taken[0]}); pass --resume to continue it "
                              "or choose another --out")
        if args.vmap or len(seeds) == 1:  # trained in this process; the pool's jobs lock their own
            for s in seeds:
                locks.enter_context(directory_lock(out / f"seed-{s}", "run"))
        _offline_runs(args, config, dataset, seeds, out)
    return 0


def _offline_runs(args: OfflineArgs, config: SACConfig, dataset: Dataset, seeds: list[int], out: Path) -> None:
    from saclab.runs.offline import train_offline, train_offline_vmapped
    from saclab.runs.offline_records import describe

    algo = f"cql_weight {config.cql_weight}" if config.algo == "sac" else "behaviour cloning"
    print(f"saclab offline: {config.env or 'no simulator'}, {len(dataset)} transitions from {args.dataset}, "
          f"preset {args.preset}, {algo}, seeds {seeds} -> {out}", file=sys.stderr)
    if args.vmap:
        for result in train_offline_vmapped(config, dataset, seeds, out, resume=args.resume):
            print(f"  done  {result.dir}: {describe(result.summary)}", file=sys.stderr)
    elif len(seeds) == 1:
        result = train_offline(config, dataset, seeds[0], out / f"seed-{seeds[0]}", resume=args.resume)
        print_json({"run_dir": str(result.dir), **result.summary})
    else:
        run_seeds("offline", config, seeds, out, args.workers, dataset=str(args.dataset))
    plot_default(out)


# ---------------------------------------------------------------------------------------
# saclab collect
# ---------------------------------------------------------------------------------------
def cmd_collect(argv: list[str]) -> int:
    from saclab.data.collect import collect
    from saclab.runs.policy import Policy
    from saclab.runs.preflight import MAX_COUNT, MAX_EVAL_EPISODES, check_seeds
    from saclab.runs.tiers import collect_tier

    args = parse(CollectArgs, argv, "saclab collect")
    out = _new_output(args.out, args.force)
    for name in ("episodes", "steps", "max_episode_steps"):
        if getattr(args, name) < 0:
            raise SaclabError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("episodes", "steps", "max_episode_steps", "num_envs"):
        if getattr(args, name) > MAX_COUNT:
            raise SaclabError(f"--{name.replace('_', '-')} must be <= {MAX_COUNT}, got {getattr(args, name)}")
    if not 1 <= args.num_envs <= MAX_EVAL_EPISODES:
        raise SaclabError(f"--num-envs must lie in [1, {MAX_EVAL_EPISODES}], got {args.num_envs}")
    if args.epsilon is not None and not 0.0 <= args.epsilon <= 1.0:
        raise SaclabError(f"--epsilon must lie in [0, 1], got {args.epsilon}")
    check_seeds([args.seed])
    if args.episodes and args.steps:
        raise SaclabError("give one budget: --episodes or --steps, not both")
    if not (args.episodes or args.steps) and args.tier != "replay":
        raise SaclabError("give a budget: --episodes N or --steps N")
    budget = {"episodes": args.episodes or None, "steps": args.steps or None}
    cap = args.max_episode_steps or None
    if args.tier is not None:
        if _flag_given(argv, "--policy"):
            raise SaclabError("give --tier or --policy, not both")
        dataset = collect_tier(args.tier, checkpoint=args.checkpoint, env_id=args.env, **budget, seed=args.seed,
                               max_episode_steps=cap, num_envs=args.num_envs, epsilon=args.epsilon)
    else:
        if args.policy != "random" and args.checkpoint is None:
            raise SaclabError(f"--policy {args.policy} needs --checkpoint RUN (or use --policy random --env ID)")
        policy = "epsilon" if args.policy == "greedy" and args.epsilon else args.policy
        agent = Policy.load(args.checkpoint, env=args.env) if args.checkpoint is not None else None
        dataset = collect(policy, env_id=args.env, **budget, agent=agent,
                          epsilon=args.epsilon or 0.0, seed=args.seed, max_episode_steps=cap,
                          num_envs=args.num_envs)
    dataset.save(out)
    info = dataset.info()
    print_json({"dataset": str(out), **{k: info[k] for k in ("transitions", "episodes", "return_mean", "return_std",
                                                          "terminations", "truncations")},
            "policy": dataset.metadata.get("policy"), "tier": dataset.metadata.get("tier")})
    return 0


# ---------------------------------------------------------------------------------------
# saclab dataset info | export | import
# ---------------------------------------------------------------------------------------
DATASET_USAGE = ("usage: saclab dataset info FILE | export FILE --id ID [--root DIR] | "
                 "import LOGS.csv|.npz|.parquet --out FILE [--columns ROLE=NAME,...] [--num-actions N] "
                 "[--reward-scale X] | import MINARI_ID_OR_DIR --out FILE [--root DIR]")


def cmd_dataset(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(DATASET_USAGE)
        return 0 if argv else 2
    action, rest = argv[0], argv[1:]
    if action == "info":
        return _dataset_info(rest)
    if action == "export":
        return _dataset_export(rest)
    if action == "import":
        return _dataset_import(rest)
    raise SaclabError(f"unknown dataset action {action!r} (info, export or import)")


def _dataset_info(argv: list[str]) -> int:
    from saclab.data.dataset import Dataset

    args = parse(InfoArgs, argv, "saclab dataset info")
    print_json({"file": str(args.file), **Dataset.load(args.file).info()})
    return 0


def _dataset_export(argv: list[str]) -> int:
    from saclab.data.dataset import Dataset
    from saclab.data.minari_io import export_minari

    args = parse(ExportArgs, argv, "saclab dataset export")
    if not args.id:
        raise SaclabError("--id ID is required (e.g. saclab/cartpole-expert-v0)")
    dataset = Dataset.load(args.file)
    path = export_minari(dataset, args.id, args.root)
    print_json({"minari_dataset": args.id, "path": str(path), "transitions": len(dataset),
            "episodes": int(len(dataset.episode_returns()))})
    return 0


def _dataset_import(argv: list[str]) -> int:
    from saclab.data.tables import table_format

    args = parse(ImportArgs, argv, "saclab dataset import")
    out = _new_output(args.out, args.force)
    if table_format(args.source) is not None:
        from saclab.data.logs import import_logs, parse_columns

        dataset = import_logs(args.source, parse_columns(args.columns), args.num_actions, args.reward_scale)
    else:
        from saclab.data.minari_io import import_minari

        given = [flag for flag in ("--columns", "--num-actions", "--reward-scale") if _flag_given(argv, flag)]
        if given:
            raise SaclabError(f"{given[0]} is for log files (.csv, .npz, .parquet), not Minari datasets")
        dataset = import_minari(args.source, args.root)
    dataset.save(out)
    info = dataset.info()
    extra = {key: dataset.metadata[key] for key in ("rows", "rows_dropped", "num_actions", "num_actions_from",
                                                     "reward_scale") if key in dataset.metadata}
    print_json({"dataset": str(out), "source": args.source, "transitions": info["transitions"],
                "episodes": info["episodes"], "obs_dim": info["obs_dim"], **extra,
                "env_id": dataset.env_id or None})
    if dataset.metadata.get("rows_dropped"):
        print(f"saclab dataset import: {dataset.metadata['rows_dropped']} episode-final row(s) without "
              "'terminated' were dropped: the state after their action is not in the log (docs/own-logs.md)",
              file=sys.stderr)
    return 0


__all__ = ["cmd_offline", "cmd_collect", "cmd_dataset", "OfflineArgs", "CollectArgs"]
