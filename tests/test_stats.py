"""Statistics across seeds: IQM and bootstrap CIs equal SciPy's, small samples, the one group summary,
the one curve plotter (its band is the bootstrap CI), and what `saclab summarize` writes."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from saclab.analysis import plots, runfiles, stats, summary
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
    assert rows[0]["final_values"] == [30, 31, 32] and rows[0]["best"]["mean"] == pytest.approx(31)
    assert rows[0]["final"]["mean_ci"][0] == pytest.approx(scipy_ci(np.array([30.0, 31, 32]), np.mean)[0])
    assert rows[1]["n"] == 1 and rows[1]["unfinished"] == 1
    assert rows[1]["final"]["mean"] == 40 and rows[1]["best"]["iqm"] == 50 and math.isnan(rows[1]["best"]["iqm_ci"][0])
    assert math.isnan(rows[0]["q_data"]) and rows[0]["overestimated_runs"] == 0  # online runs log no critic

    groups = runfiles.sweep_groups(tmp_path)  # no sweep.json: discovered */seed-N
    assert list(groups) == ["w=0", "w=1"] and len(groups["w=0"]) == 3
    rows, paths = summary.summarize_directory(tmp_path)
    assert [p.name for p in paths] == ["summary.csv", "summary.md", "curves.png"]
    csv_lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(summary.CSV_COLUMNS) and csv_lines[0].startswith("group,n,unfinished,final_mean")
    assert csv_lines[1].startswith("w=0,3,0,31.0,") and len(csv_lines) == 3
    md = (tmp_path / "summary.md").read_text()
    assert "| w=1 | 1 (+1 unfinished) | 40.0 n/a |" in md and "percentile bootstrap" in md
    table = summary.format_table(rows)
    assert "w=0" in table.splitlines()[2] and "31.0 [30.0, 32.0]" in table


def test_group_summary_reads_the_critic_columns_and_alpha(tmp_path):
    runs = []
    for s, (q, over) in enumerate([(4.0, False), (8.0, True)]):
        run = fake_run(tmp_path / f"seed-{s}", [10, 20], kind="offline")
        (run / "evaluations.csv").write_text(f"epoch,return_mean,q_data,q_greedy,mc_return,q_bound,overestimated\n"
                                             f"1,10,1.0,1.0,5.0,100.0,False\n2,20,{q},{q + 1},5.0,100.0,{over}\n")
        lines = [json.dumps({"alpha": 0.5}), json.dumps({"alpha": 0.1 * (s + 1)})]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        runs.append(run)
    row = stats.summarize_group(runs, "g")
    assert row["q_data"] == 6.0 and row["q_greedy"] == 7.0 and row["mc_return"] == 5.0 and row["q_bound"] == 100.0
    assert row["overestimated_runs"] == 1 and row["alpha"] == pytest.approx(0.15)


def test_sweep_groups_follow_sweep_json(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"labels": ["cql_weight=5", "cql_weight=0"], "seeds": [3, 4]}))
    groups = runfiles.sweep_groups(tmp_path)
    assert list(groups) == ["cql_weight=5", "cql_weight=0"]  # the experiment's order, runs not started included
    assert groups["cql_weight=0"] == [tmp_path / "cql_weight=0" / "seed-3", tmp_path / "cql_weight=0" / "seed-4"]


def test_the_curve_band_is_the_bootstrap_ci(tmp_path, monkeypatch):
    """`saclab plot`, `saclab summarize` and the report draw with plot_curves: mean and bootstrap CI."""
    import matplotlib.axes

    runs = [fake_run(tmp_path / f"seed-{s}", [10 + s, 20 + 3 * s, 30 - s]) for s in range(4)]
    drawn = {}
    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between",
                        lambda self, xs, low, high, **kw: drawn.update(low=np.asarray(low), high=np.asarray(high)))
    assert plots.plot_curves({"g": runs}, tmp_path / "c.png").stat().st_size > 1000
    _, ys = plots.aligned_curves(runs, "step")
    _, low, high = stats.curve_band(ys)
    np.testing.assert_allclose(drawn["low"], low)
    np.testing.assert_allclose(drawn["high"], high)
    assert plots.plot_curves({"g": [tmp_path / "nothing"]}, tmp_path / "d.png") is None


def test_sweep_groups_of_nothing_is_an_error(tmp_path):
    with pytest.raises(SaclabError, match="no runs found"):
        runfiles.sweep_groups(tmp_path)
    with pytest.raises(SaclabError, match="not found"):
        runfiles.sweep_groups(tmp_path / "missing")
