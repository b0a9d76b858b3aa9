"""Evaluation curves across seeds (matplotlib, headless)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saclab.errors import SaclabError
from saclab.runs.runlog import read_evaluations


def seed_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """The per-seed run directories under ``run_dir`` (or ``run_dir`` itself if it is one run)."""
    run_dir = Path(run_dir)
    if (run_dir / "evaluations.csv").is_file():
        return [run_dir]
    found = sorted(p.parent for p in run_dir.glob("seed-*/evaluations.csv"))
    if not found:
        raise SaclabError(f"no evaluations found in {run_dir} (expected evaluations.csv or seed-*/evaluations.csv)")
    return found


def aligned_curves(runs: Sequence[str | os.PathLike], x: str = "step",
                   y: str = "return_mean") -> tuple[np.ndarray, np.ndarray]:
    """Curves of several runs on one x grid: (xs (T,), ys (runs, T)).

    Runs evaluated at the same x values (episodes, epochs) align exactly; others
    are linearly interpolated onto the first run's grid, up to the shortest run.
    """
    curves = []
    for run in runs:
        rows = read_evaluations(run)
        if not rows:
            raise SaclabError(f"run {run} has no evaluations yet")
        if x not in rows[0]:
            raise SaclabError(f"run {run} has no column {x!r} (columns: {', '.join(rows[0])})")
        curves.append((np.array([r[x] for r in rows], float), np.array([r[y] for r in rows], float)))
    end = min(c[0][-1] for c in curves)
    xs = curves[0][0][curves[0][0] <= end]
    ys = np.stack([c[1][: len(xs)] if np.array_equal(c[0][: len(xs)], xs) else np.interp(xs, c[0], c[1])
                   for c in curves])
    return xs, ys


def plot_groups(groups: dict[str, Sequence[str | os.PathLike]], out: str | os.PathLike, x: str = "step",
                title: str = "", ylabel: str = "greedy evaluation return", hline: float | None = None) -> Path:
    """One line per group: mean across its seeds with a +-1 std band.  Saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, runs in groups.items():
        xs, ys = aligned_curves(runs, x)
        mean, std = ys.mean(axis=0), ys.std(axis=0)
        (line,) = ax.plot(xs, mean, label=f"{label} (n={len(runs)})", linewidth=1.8)
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel({"step": "environment steps", "episode": "training episodes", "epoch": "epochs"}.get(x, x))
    ax.set_ylabel(ylabel)
    ax.set_title(title or "evaluation return (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out)
    return out
