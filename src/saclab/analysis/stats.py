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

Evaluation curves (``curve_band``, drawn by ``saclab.analysis.plots.plot_curves``)
are the mean across seeds with a 95% percentile-bootstrap band of the mean at
each x (no band for n = 1).

``summarize_group`` is the one summary of a group of runs: ``saclab summarize``,
the study report and the benchmarks all read it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as _scipy_stats

from saclab.errors import SaclabError
from saclab.runs.runlog import read_evaluations, read_metrics, read_result

CONFIDENCE = 0.95
RESAMPLES = 10_000
CURVE_RESAMPLES = 2_000
RANDOM_STATE = 0
SCORES = ("final", "best")
DIAGNOSTICS = ("q_data", "q_greedy", "mc_return", "q_bound")
"""Offline runs' critic diagnostics (evaluations.csv columns), averaged over a group's final rows."""


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
    try:
        result = read_result(run_dir)
    except (OSError, json.JSONDecodeError):
        return None
    if result is None or "final_return" not in result:
        return None
    return {"final": float(result["final_return"]), "best": float(result["best_return"])}


def _last(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    return float(values[-1]) if values else math.nan


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize_group(runs: Sequence[str | os.PathLike], label: str = "", confidence: float = CONFIDENCE,
                    n_resamples: int = RESAMPLES, random_state: int = RANDOM_STATE) -> dict[str, Any]:
    """The summary of one group of runs (one configuration, several seeds).

    Finished runs (with ``result.json``) count; the others are only counted in
    ``unfinished``.  Keys: ``group`` (``label``), ``n``, ``unfinished``, ``runs``
    (the finished run directories), ``final`` and ``best`` (``interval_estimates``
    of each run's final and best evaluation return), ``final_values`` and
    ``best_values``; the mean over runs of the last evaluation's ``q_data``,
    ``q_greedy``, ``mc_return`` and ``q_bound`` (offline runs; nan where a run
    logs none), ``overestimated_runs`` (runs with any evaluation flagged
    ``overestimated``) and ``alpha`` (the mean final temperature from ``metrics.jsonl``).
    """
    finished = [(str(r), s) for r in runs if (s := run_scores(r)) is not None]
    row: dict[str, Any] = {"group": label, "n": len(finished), "unfinished": len(runs) - len(finished),
                           "runs": [r for r, _ in finished]}
    for score in SCORES:
        values = [s[score] for _, s in finished]
        row[score] = interval_estimates(values, confidence, n_resamples, random_state)
        row[f"{score}_values"] = values
    evaluations = [read_evaluations(r) for r, _ in finished]
    for key in DIAGNOSTICS:
        row[key] = _mean([_last(e, key) for e in evaluations])
    row["overestimated_runs"] = sum(any(r.get("overestimated") is True for r in e) for e in evaluations)
    metrics = [read_metrics(r) for r, _ in finished]
    row["alpha"] = _mean([_last(m, "alpha") for m in metrics])
    row["entropy"] = _mean([_last(m, "entropy") for m in metrics])
    return row


def summarize_groups(groups: Mapping[str, Sequence[str | os.PathLike]], confidence: float = CONFIDENCE,
                     n_resamples: int = RESAMPLES, random_state: int = RANDOM_STATE) -> list[dict[str, Any]]:
    """``summarize_group`` of each group (label -> run directories), in the order given."""
    return [summarize_group(runs, label, confidence, n_resamples, random_state) for label, runs in groups.items()]


__all__ = ["iqm", "bootstrap_ci", "interval_estimates", "curve_band", "run_scores", "summarize_group",
           "summarize_groups", "CONFIDENCE", "RESAMPLES", "RANDOM_STATE", "SCORES"]
