"""Evaluation curves across seeds: the one curve plotter (matplotlib, headless).

``saclab plot``, ``saclab summarize`` and the study report all draw curves with
``plot_curves``: the mean over a group's seeds with a 95% percentile-bootstrap
band of the mean at each x (``stats.curve_band``; no band for one seed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from saclab.analysis.runfiles import curve_axis
from saclab.analysis.stats import curve_band
from saclab.errors import SaclabError
from saclab.files import atomic_write
from saclab.runs.runlog import read_evaluations

X_LABELS = {"step": "environment steps", "episode": "training episodes", "epoch": "epochs"}
BAND = "mean and 95% bootstrap CI over seeds"


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


def save_figure(fig, out: str | os.PathLike) -> Path:
    """Save a matplotlib figure as a PNG atomically (creating its folder) and close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
    return out


def plot_curves(groups: Mapping[str, Sequence[str | os.PathLike]], out: str | os.PathLike, x: str | None = None,
                title: str = "", ylabel: str = "greedy evaluation return",
                hline: float | None = None) -> Path | None:
    """Each group's evaluation curve: the mean across its runs with a 95% bootstrap band of the mean.

    ``x``: step, episode or epoch (default: the first run's natural axis, ``curve_axis``).
    Runs without evaluations are left out; returns None if no group has any, else the PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    usable = {label: [r for r in runs if read_evaluations(r)] for label, runs in groups.items()}
    usable = {label: runs for label, runs in usable.items() if runs}
    if not usable:
        return None
    x = x or curve_axis(next(iter(usable.values()))[0])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, runs in usable.items():
        xs, ys = aligned_curves(runs, x)
        mean, low, high = curve_band(ys)
        (line,) = ax.plot(xs, mean, label=f"{label} (n={len(runs)})", linewidth=1.6)
        if len(runs) > 1:
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(X_LABELS.get(x, x))
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"evaluation return: {BAND}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out)


__all__ = ["aligned_curves", "plot_curves", "save_figure", "BAND"]
