"""Statistics across seeds: mean, IQM and 95% bootstrap confidence intervals.

Per group of runs (one configuration, several seeds) and per score (a run's
final evaluation return, and its best):

* **mean** and its 95% CI;
* **IQM**, the interquartile mean: ``scipy.stats.trim_mean(x, 0.25)``, the mean
  of the middle 50% of the runs (robust to one lucky or unlucky seed; for
  n < 4 nothing is trimmed and it equals the mean), and its 95% CI.

CIs are ``scipy.stats.bootstrap`` percentile intervals (10,000 resamples of
the runs, ``random_state`` fixed at 0, so the same runs give the same
numbers).  Percentile, not BCa, because seeds often tie (every run reaching
CartPole's cap of 500), where BCa is undefined; the percentile interval is
then the single value, as it should be.  The bootstrap treats the runs as a
sample, so small n gives optimistic (too narrow) intervals:

* n = 1: the statistic is the value, the CI is (nan, nan): no spread can be estimated;
* n = 2: the CI lies within [min, max] of the two values; read it as a range, not a CI.

Evaluation curves (``plot_curves``) are drawn as the mean across seeds with
a 95% percentile-bootstrap band of the mean at each x (no band for n = 1).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as _scipy_stats

from saclab.errors import SaclabError

CONFIDENCE = 0.95
RESAMPLES = 10_000
CURVE_RESAMPLES = 2_000
RANDOM_STATE = 0
SCORES = ("final", "best")
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
CURVES_PNG = "curves.png"


# ---------------------------------------------------------------------------------------
# Point estimates and intervals
# ---------------------------------------------------------------------------------------
def iqm(values: Any, axis: int | None = -1) -> Any:
    """Interquartile mean: the 25%-trimmed mean (``scipy.stats.trim_mean(values, 0.25)``)."""
    return _scipy_stats.trim_mean(values, 0.25, axis=axis)


def bootstrap_ci(values: Sequence[float] | np.ndarray, statistic: Any = np.mean, confidence: float = CONFIDENCE,
                 n_resamples: int = RESAMPLES, random_state: int = RANDOM_STATE) -> tuple[float, float]:
    """95% (``confidence``) percentile-bootstrap interval of ``statistic`` over ``values``.

    ``statistic(x, axis=-1)`` must be vectorised (np.mean, ``iqm``).  n < 2: (nan, nan).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise SaclabError(f"bootstrap_ci expects one value per run, got shape {x.shape}")
    if len(x) < 2 or not np.all(np.isfinite(x)):
        return math.nan, math.nan
    result = _scipy_stats.bootstrap((x,), statistic, confidence_level=confidence, n_resamples=n_resamples,
                                    method="percentile", vectorized=True, random_state=random_state)
    low, high = result.confidence_interval
    return float(low), float(high)


def interval_estimates(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE,
                       n_resamples: int = RESAMPLES, random_state: int = RANDOM_STATE) -> dict[str, Any]:
    """``{"n", "mean", "mean_ci": (lo, hi), "iqm", "iqm_ci": (lo, hi), "std"}`` of one value per run.

    ``std`` is the sample standard deviation (ddof 1; nan for n < 2).  No values: all nan.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        nan2 = (math.nan, math.nan)
        return {"n": 0, "mean": math.nan, "mean_ci": nan2, "iqm": math.nan, "iqm_ci": nan2, "std": math.nan}
    return {
        "n": n,
        "mean": float(np.mean(x)),
        "mean_ci": bootstrap_ci(x, np.mean, confidence, n_resamples, random_state),
        "iqm": float(iqm(x)),
        "iqm_ci": bootstrap_ci(x, iqm, confidence, n_resamples, random_state),
        "std": float(np.std(x, ddof=1)) if n > 1 else math.nan,
    }


def curve_band(ys: np.ndarray, confidence: float = CONFIDENCE, n_resamples: int = CURVE_RESAMPLES,
               random_state: int = RANDOM_STATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs of curves ``ys`` (runs, T) and the percentile-bootstrap CI of the mean at
    each point: (mean, low, high), each (T,).  One run: low = high = nan."""
    ys = np.asarray(ys, dtype=float)
    mean = ys.mean(axis=0)
    if ys.shape[0] < 2:
        return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    result = _scipy_stats.bootstrap((ys,), np.mean, axis=0, confidence_level=confidence, n_resamples=n_resamples,
                                    method="percentile", vectorized=True, random_state=random_state)
    return mean, np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


# ---------------------------------------------------------------------------------------
# Groups of runs
# ---------------------------------------------------------------------------------------
def run_scores(run_dir: str | os.PathLike) -> dict[str, float] | None:
    """A finished run's final and best evaluation return (from ``result.json``); None if unfinished."""
    from saclab.runs.runlog import read_result

    try:
        result = read_result(run_dir)
    except (OSError, json.JSONDecodeError):
        return None
    if result is None or "final_return" not in result:
        return None
    return {"final": float(result["final_return"]), "best": float(result["best_return"])}


def summarize_groups(groups: Mapping[str, Sequence[str | os.PathLike]], confidence: float = CONFIDENCE,
                     n_resamples: int = RESAMPLES, random_state: int = RANDOM_STATE) -> list[dict[str, Any]]:
    """One row per group (label -> run directories), in the order given.

    A row holds ``group``, ``n`` (finished runs), ``unfinished`` (runs without
    ``result.json``, left out), ``runs`` (the finished run directories),
    ``final_values``/``best_values`` and, for ``s`` in final and best:
    ``s_mean``, ``s_mean_low``, ``s_mean_high``, ``s_iqm``, ``s_iqm_low``,
    ``s_iqm_high``, ``s_std`` (see the module docstring for the statistics).
    """
    rows = []
    for label, runs in groups.items():
        finished = [(Path(r), s) for r in runs if (s := run_scores(r)) is not None]
        row: dict[str, Any] = {"group": label, "n": len(finished), "unfinished": len(runs) - len(finished),
                               "runs": [str(r) for r, _ in finished]}
        for score in SCORES:
            values = [s[score] for _, s in finished]
            est = interval_estimates(values, confidence, n_resamples, random_state)
            row[f"{score}_values"] = values
            row.update({f"{score}_mean": est["mean"], f"{score}_mean_low": est["mean_ci"][0],
                        f"{score}_mean_high": est["mean_ci"][1], f"{score}_iqm": est["iqm"],
                        f"{score}_iqm_low": est["iqm_ci"][0], f"{score}_iqm_high": est["iqm_ci"][1],
                        f"{score}_std": est["std"]})
        rows.append(row)
    return rows


def sweep_groups(directory: str | os.PathLike) -> dict[str, list[Path]]:
    """Groups of a sweep directory: label -> its ``seed-N`` run directories.

    With a ``sweep.json`` the labels and seeds are the experiment's (in its
    order, runs not started yet included); otherwise every directory holding
    ``seed-*`` runs is a group, labelled by its path relative to ``directory``.
    """
    from saclab.launch.sweep import load_experiment

    directory = Path(directory)
    if not directory.is_dir():
        raise SaclabError(f"sweep directory not found: {directory}")
    experiment = load_experiment(directory)
    if experiment is not None:
        return {label: [directory / label / f"seed-{s}" for s in experiment.seeds] for label in experiment.labels()}
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


# ---------------------------------------------------------------------------------------
# Output: table, CSV, Markdown, curves
# ---------------------------------------------------------------------------------------
CSV_COLUMNS = ["group", "n", "unfinished"] + [
    f"{s}_{k}" for s in SCORES for k in ("mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high", "std")]


def _num(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _interval(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{_num(low)}, {_num(high)}]"


def table_cells(row: Mapping[str, Any]) -> list[str]:
    """The human-readable cells of one summary row (see ``TABLE_HEADER``)."""
    cells = [str(row["group"]), f"{row['n']}" + (f" (+{row['unfinished']} unfinished)" if row["unfinished"] else "")]
    for score in SCORES:
        cells += [f"{_num(row[f'{score}_mean'])} {_interval(row[f'{score}_mean_low'], row[f'{score}_mean_high'])}",
                  f"{_num(row[f'{score}_iqm'])} {_interval(row[f'{score}_iqm_low'], row[f'{score}_iqm_high'])}"]
    return cells


TABLE_HEADER = ["configuration", "n", "final: mean [95% CI]", "final: IQM [95% CI]",
                "best: mean [95% CI]", "best: IQM [95% CI]"]


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of summary rows (for a terminal)."""
    lines = [TABLE_HEADER] + [table_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADER))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def format_markdown(rows: Sequence[Mapping[str, Any]], title: str = "") -> str:
    """A Markdown table of summary rows, with a note on the statistics."""
    out = [f"# {title}", ""] if title else []
    out += ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in table_cells(r)) + " |" for r in rows]
    out += ["", "final: the last greedy evaluation's mean return; best: the highest evaluation of the run. "
            "n: finished runs (seeds). IQM: 25%-trimmed mean (scipy.stats.trim_mean). 95% CIs: percentile "
            f"bootstrap over runs (scipy.stats.bootstrap, {RESAMPLES} resamples, random_state {RANDOM_STATE}); "
            "n/a for n = 1, and only a range for n = 2.", ""]
    return "\n".join(out)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_summary(rows: Sequence[Mapping[str, Any]], directory: str | os.PathLike, title: str = "") -> list[Path]:
    """Write ``summary.csv`` and ``summary.md`` in ``directory``; returns their paths."""
    directory = Path(directory)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = [directory / SUMMARY_CSV, directory / SUMMARY_MD]
    _atomic_write(paths[0], buf.getvalue())
    _atomic_write(paths[1], format_markdown(rows, title))
    return paths


def curve_axis(run_dir: str | os.PathLike) -> str:
    """The natural x axis of a run: epoch (offline), episode (an episode budget) or step."""
    meta_path = Path(run_dir) / "config.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("kind") == "offline":
        return "epoch"
    config = meta.get("config", {})
    return "episode" if config.get("total_episodes") and not config.get("total_steps") else "step"


def plot_curves(groups: Mapping[str, Sequence[str | os.PathLike]], out: str | os.PathLike, x: str | None = None,
                title: str = "") -> Path | None:
    """Each group's evaluation curve: mean across its runs with a 95% bootstrap band of the mean.

    Runs without evaluations are left out; returns None if no group has any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from saclab.analysis.plots import aligned_curves
    from saclab.runs.runlog import read_evaluations

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
    ax.set_xlabel({"step": "environment steps", "episode": "training episodes", "epoch": "epochs"}.get(x, x))
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(title or "evaluation return: mean and 95% bootstrap CI over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def summarize_directory(directory: str | os.PathLike, x: str | None = None) -> tuple[list[dict[str, Any]], list[Path]]:
    """Summarise a sweep directory: rows, and the files written there
    (``summary.csv``, ``summary.md`` and, if there are evaluations, ``curves.png``)."""
    directory = Path(directory)
    groups = sweep_groups(directory)
    rows = summarize_groups(groups)
    paths = write_summary(rows, directory, title=f"Sweep {directory.name}")
    curves = plot_curves(groups, directory / CURVES_PNG, x=x)
    if curves is not None:
        paths.append(curves)
    return rows, paths


__all__ = ["iqm", "bootstrap_ci", "interval_estimates", "curve_band", "summarize_groups", "sweep_groups",
           "run_scores", "format_table", "format_markdown", "write_summary", "plot_curves", "summarize_directory"]
