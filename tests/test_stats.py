"""Statistics across seeds: IQM and bootstrap CIs equal SciPy's, small samples, group summaries."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from saclab.analysis import stats
from saclab.errors import SaclabError
from saclab.runs.runlog import write_result

SAMPLE = np.array([12.0, 480.0, 35.0, 500.0, 210.0, 95.0, 500.0])


def scipy_ci(x, statistic):
    res = sps.bootstrap((x,), statistic, confidence_level=0.95, n_resamples=10_000, method="percentile",
                        vectorized=True, random_state=0)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def test_iqm_is_the_quarter_trimmed_mean():
    assert stats.iqm(SAMPLE) == pytest.approx(sps.trim_mean(SAMPLE, 0.25))
    # 7 values: 1 trimmed at each end -> mean of the middle 5
    assert stats.iqm(SAMPLE) == pytest.approx(np.mean(np.sort(SAMPLE)[1:-1]))


def test_estimates_equal_scipy_called_directly():
    est = stats.interval_estimates(SAMPLE)
    assert est["n"] == 7
    assert est["mean"] == pytest.approx(SAMPLE.mean())
    assert est["iqm"] == pytest.approx(sps.trim_mean(SAMPLE, 0.25))
    assert est["std"] == pytest.approx(SAMPLE.std(ddof=1))
    assert est["mean_ci"] == pytest.approx(scipy_ci(SAMPLE, np.mean))
    assert est["iqm_ci"] == pytest.approx(scipy_ci(SAMPLE, lambda x, axis: sps.trim_mean(x, 0.25, axis=axis)))
    lo, hi = est["iqm_ci"]
    assert lo < est["iqm"] < hi
    assert stats.interval_estimates(SAMPLE) == est  # fixed random_state: reproducible


def test_small_samples():
    one = stats.interval_estimates([42.0])
    assert one["mean"] == one["iqm"] == 42.0
    assert all(math.isnan(v) for v in (*one["mean_ci"], *one["iqm_ci"], one["std"]))
    two = stats.interval_estimates([10.0, 30.0])
    assert two["mean"] == two["iqm"] == 20.0  # nothing trimmed below 4 values
    assert 10.0 <= two["mean_ci"][0] <= two["mean_ci"][1] <= 30.0
    tied = stats.interval_estimates([500.0, 500.0, 500.0])  # every seed at the cap: no BCa nan
    assert tied["mean_ci"] == tied["iqm_ci"] == (500.0, 500.0)
    empty = stats.interval_estimates([])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["iqm_ci"][0])


def test_curve_band_is_a_bootstrap_of_the_mean_per_point():
    ys = np.array([[0.0, 10, 20], [2, 14, 20], [4, 9, 20], [1, 30, 20]])
    mean, low, high = stats.curve_band(ys)
    np.testing.assert_allclose(mean, ys.mean(axis=0))
    res = sps.bootstrap((ys,), np.mean, axis=0, n_resamples=2_000, method="percentile", random_state=0)
    np.testing.assert_allclose(low, res.confidence_interval.low)
    np.testing.assert_allclose(high, res.confidence_interval.high)
    assert low[2] == high[2] == 20
    _, low1, _ = stats.curve_band(ys[:1])
    assert np.isnan(low1).all()


def fake_run(path, returns, finished=True, kind="online"):
    """A run directory as the trainers leave it: config.json, evaluations.csv, result.json."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"kind": kind, "config": {"total_steps": 100}}))
    rows = ["step,episode,return_mean"] + [f"{10 * (i + 1)},{i + 1},{r}" for i, r in enumerate(returns)]
    (path / "evaluations.csv").write_text("\n".join(rows) + "\n")
    if finished:
        write_result(path, {"final_return": returns[-1], "best_return": max(returns), "evaluations": len(returns)})
    return path


def test_summarize_groups_and_files(tmp_path):
    a = [fake_run(tmp_path / "w=0" / f"seed-{s}", [10, 20 + s, 30 + s]) for s in range(3)]
    b = [fake_run(tmp_path / "w=1" / "seed-0", [5, 50, 40]),
         fake_run(tmp_path / "w=1" / "seed-1", [5, 6], finished=False)]
    rows = stats.summarize_groups({"w=0": a, "w=1": b})
    assert [r["group"] for r in rows] == ["w=0", "w=1"]
    assert rows[0]["n"] == 3 and rows[0]["unfinished"] == 0
    assert rows[0]["final_values"] == [30, 31, 32] and rows[0]["best_mean"] == pytest.approx(31)
    assert rows[0]["final_mean_low"] == pytest.approx(scipy_ci(np.array([30.0, 31, 32]), np.mean)[0])
    assert rows[1]["n"] == 1 and rows[1]["unfinished"] == 1
    assert rows[1]["final_mean"] == 40 and rows[1]["best_iqm"] == 50 and math.isnan(rows[1]["best_iqm_low"])

    groups = stats.sweep_groups(tmp_path)  # no sweep.json: discovered */seed-N
    assert list(groups) == ["w=0", "w=1"] and len(groups["w=0"]) == 3
    rows, paths = stats.summarize_directory(tmp_path)
    assert [p.name for p in paths] == ["summary.csv", "summary.md", "curves.png"]
    csv_lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("group,n,unfinished,final_mean") and len(csv_lines) == 3
    md = (tmp_path / "summary.md").read_text()
    assert "| w=1 | 1 (+1 unfinished) | 40.0 n/a |" in md and "percentile bootstrap" in md
    table = stats.format_table(rows)
    assert "w=0" in table.splitlines()[2] and "31.0 [30.0, 32.0]" in table


def test_sweep_groups_of_nothing_is_an_error(tmp_path):
    with pytest.raises(SaclabError, match="no runs found"):
        stats.sweep_groups(tmp_path)
    with pytest.raises(SaclabError, match="not found"):
        stats.sweep_groups(tmp_path / "missing")
