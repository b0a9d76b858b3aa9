"""What every subcommand shares: the preset-aware tyro parsing with one-line errors, the
run flags, JSON output, and the report of finished runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import tyro

from saclab.config import preset
from saclab.errors import SaclabError

PresetName = Literal["default", "notebook", "notebook-faithful", "test"]
T = TypeVar("T")


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


def preset_from_argv(argv: list[str]) -> str:
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


def with_preset(cls: type[T], argv: list[str], prog: str, **fields: object) -> T:
    name = preset_from_argv(argv)
    base = preset(name)
    return parse(cls, argv, prog, default=cls(config=base, preset=name, **fields))  # type: ignore[call-arg]


def check_output_dir(path: Path, flag: str = "--out") -> Path:
    """Refuse, before any work, an output directory that is a file or that cannot be created or
    written in (the nearest existing folder on its path must be a writable directory)."""
    if path.exists() and not path.is_dir():
        raise SaclabError(f"{flag} {path} is a file, expected a directory")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise SaclabError(f"{flag} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SaclabError(f"{flag} {path}: {existing} is not writable")
    return path


def check_output_file(path: Path, flag: str = "--out") -> Path:
    """Like ``check_output_dir``, for a file: its folder must be (or become) a writable directory."""
    check_output_dir(path.parent if str(path.parent) else Path("."), flag)
    return path


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


def run_seeds(kind: str, config: object, seeds: list[int], out: Path, workers: int,
              dataset: str | None = None) -> None:
    """Several seeds of one configuration in parallel processes (``out/seed-N``); a line per
    finished run, one error if any failed."""
    from saclab.launch.jobs import seed_jobs
    from saclab.launch.pool import run_jobs

    outcomes = run_jobs(seed_jobs(kind, config, seeds, out, dataset), workers=workers or None,
                        on_done=report_outcome)
    failed = sum(not o.ok for o in outcomes)
    if failed:
        raise SaclabError(f"{failed} of {len(outcomes)} runs failed (see above)")


def report_outcome(outcome) -> None:
    """One stderr line per finished job of a multi-seed run."""
    job = outcome.job
    if outcome.ok:
        s = outcome.summary
        values = (f", alpha {s['final_alpha']:.3g}, Q {s['final_q_data']:.1f} (bound {s['final_q_bound']:.1f})"
                  if s.get("final_alpha") is not None else "")
        if "final_return" in s:
            print(f"  done  {job.run_dir}: final {s['final_return']:.1f}, best {s['best_return']:.1f}{values}",
                  file=sys.stderr)
        else:  # an offline run without a simulator
            from saclab.runs.offline_records import describe

            print(f"  done  {job.run_dir}: {describe(s)}", file=sys.stderr)
    else:
        print(f"  FAIL  {job.run_dir}: {outcome.error}", file=sys.stderr)


def plot_default(out: Path) -> None:
    """Draw ``out/curve.png`` after a training command, if there is anything to draw."""
    try:
        from saclab.analysis.plots import plot_curves
        from saclab.analysis.runfiles import seed_dirs

        if not have_returns(seed_dirs(out)):
            print(f"saclab: no return curve: {NO_RETURNS}", file=sys.stderr)
            return
        x = default_x(out)
        path = plot_curves({out.name: seed_dirs(out)}, out / "curve.png", x=x)
        print(f"saclab: curve -> {path}", file=sys.stderr)
    except SaclabError:
        pass


NO_RETURNS = ("trained without a simulator (the held-out metrics td_error, initial_value, action_agreement, ... "
              "are in evaluations.csv and result.json)")


def have_returns(run_dirs: list[Path]) -> bool:
    """Whether any of these runs logged evaluation returns (an offline run without a simulator has none)."""
    from saclab.runs.runlog import read_evaluations

    for run in run_dirs:
        rows = read_evaluations(run)
        if rows and "return_mean" in rows[0]:
            return True
    return False


def default_x(run: Path) -> str:
    from saclab.analysis.runfiles import curve_axis, seed_dirs

    return curve_axis(seed_dirs(run)[0])


__all__ = ["PresetName", "RunArgs", "parse", "check_output_dir", "check_output_file", "with_preset",
           "preset_from_argv", "print_json", "run_seeds", "report_outcome", "plot_default", "default_x",
           "have_returns", "NO_RETURNS"]
