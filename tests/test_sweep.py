"""Sweeps: typed grids, sweep.json, the same results on local and Ray, resume after a kill,
failing runs, and the CLI's one-line errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from saclab.cli.main import main
from saclab.config import preset
from saclab.errors import SaclabError
from saclab.launch import sweep as sw
from saclab.launch.grid import grid_labels, parse_grid
from saclab.launch.jobs import Job
from saclab.launch.pool import run_jobs
from saclab.launch.sweep import Experiment

BASE = preset("test").replace(total_steps=200, checkpoint_every_steps=60)
GRID = {"tau": [0.005, 0.01]}
SEEDS = 2
CLI_BASE = ["--preset", "test", "--total-steps", "200", "--checkpoint-every-steps", "60",
            "--set", "tau=0.005,0.01", "--seeds", "2"]


def evaluation_rows(run):
    """evaluations.csv without its wall-clock column."""
    return [line.rsplit(",", 1)[0] for line in (Path(run) / "evaluations.csv").read_text().splitlines()]


def run_files(run):
    return evaluation_rows(run), (Path(run) / "metrics.jsonl").read_text()


def run_dirs(out):
    return [Path(out) / f"tau={t}" / f"seed-{s}" for t in GRID["tau"] for s in range(SEEDS)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The 2-config x 2-seed online sweep, run in this process (workers=1)."""
    out = tmp_path_factory.mktemp("sweep") / "local"
    outcomes = sw.sweep("online", BASE, GRID, SEEDS, out, workers=1)
    return out, outcomes


# --- describing a sweep -------------------------------------------------------------------
def test_grid_values_are_parsed_by_field_type():
    grid = parse_grid(["cql-weight=0,0.5,5", "batch_size=64,128", "hidden_sizes=64x64,128",
                       "autotune_alpha=true,false", "env=CartPole-v1"])
    assert grid == {"cql_weight": [0.0, 0.5, 5.0], "batch_size": [64, 128], "hidden_sizes": [(64, 64), (128,)],
                    "autotune_alpha": [True, False], "env": ["CartPole-v1"]}
    assert grid_labels({"cql_weight": [0.0, 5.0], "hidden_sizes": [(64, 64)]}) == [
        "cql_weight=0.0,hidden_sizes=64x64", "cql_weight=5.0,hidden_sizes=64x64"]


@pytest.mark.parametrize("spec,message", [
    ("nope=1", "unknown config field 'nope'"),
    ("batch_size=1.5", "bad value '1.5' for batch_size"),
    ("autotune_alpha=maybe", "bad value 'maybe' for autotune_alpha"),
    ("hidden_sizes=64y64", "bad value '64y64' for hidden_sizes"),
    ("gamma", "--set expects FIELD=V1,V2"),
    ("gamma=0.9,0.9", "repeats value(s) 0.9"),
])
def test_bad_grid_specs(spec, message):
    with pytest.raises(SaclabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_grid([spec])


def test_experiment_round_trip_and_refusals(tmp_path):
    e = Experiment.create("online", BASE, {"tau": [0.01, "0.005"], "batch_size": [32]}, 3)
    assert e.grid == {"tau": [0.01, 0.005], "batch_size": [32]} and e.seeds == (0, 1, 2)
    assert sw.prepare(e, tmp_path / "x") is False
    assert sw.load_experiment(tmp_path / "x") == e  # grid order kept through sorted JSON
    assert sw.prepare(e, tmp_path / "x") is True
    with pytest.raises(SaclabError, match="differs in seeds"):
        sw.prepare(Experiment.create("online", BASE, e.grid, 2), tmp_path / "x")
    with pytest.raises(SaclabError, match="differs in grid"):
        sw.prepare(Experiment.create("online", BASE, {"batch_size": [32], "tau": [0.01, 0.005]}, 3), tmp_path / "x")
    # a base value the grid overrides does not make a different experiment
    assert sw.prepare(Experiment.create("online", BASE.replace(tau=0.5), e.grid, 3), tmp_path / "x") is True
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "stray").write_text("")
    with pytest.raises(SaclabError, match="holds no sweep.json"):
        sw.prepare(e, tmp_path / "y")
    with pytest.raises(SaclabError, match="gamma=1.0: gamma must be"):
        Experiment.create("online", BASE, {"gamma": [0.9, 1.0]}, 1)
    with pytest.raises(SaclabError, match="needs a dataset"):
        Experiment.create("offline", BASE, {}, 1)


# --- running ------------------------------------------------------------------------------
def test_local_sweep_writes_runs_and_description(reference):
    out, outcomes = reference
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert [Path(o.job.run_dir) for o in outcomes] == [p.resolve() for p in run_dirs(out)]
    described = json.loads((out / "sweep.json").read_text())
    assert described["kind"] == "online" and described["seeds"] == [0, 1]
    assert described["grid"] == {"tau": [0.005, 0.01]} and described["base_config"]["total_steps"] == 200
    for o in outcomes:
        assert json.loads((Path(o.job.run_dir) / "result.json").read_text())["steps"] == 200
    a, b = (run_files(d) for d in run_dirs(out)[::2])  # same seed, different tau: different learning
    assert a[1] != b[1]


def test_ray_backend_gives_the_same_runs(reference, tmp_path):
    pytest.importorskip("ray")
    out, local_outcomes = reference
    outcomes = sw.sweep("online", BASE, GRID, SEEDS, tmp_path / "ray", backend="ray")
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for mine, theirs, o, lo in zip(run_dirs(tmp_path / "ray"), run_dirs(out), outcomes, local_outcomes,
                                   strict=True):
        assert run_files(mine) == run_files(theirs), mine
        assert {k: v for k, v in o.summary.items() if k not in ("wall_time_s", "steps_per_s")} == \
            {k: v for k, v in lo.summary.items() if k not in ("wall_time_s", "steps_per_s")}


KILLER = textwrap.dedent("""
    import os, sys
    from saclab.launch import sweep
    from saclab.runs import runlog
    from saclab.config import preset

    victim, log_eval = sys.argv[2], runlog.RunLog.log_eval

    def log_and_maybe_die(self, row):
        log_eval(self, row)
        meta = self.dir / "checkpoint" / "meta.json"
        if str(self.dir) == victim and meta.exists() and row["step"] > 60:
            os._exit(137)  # killed: after a mid-run checkpoint, with a row logged past it

    runlog.RunLog.log_eval = log_and_maybe_die
    base = preset("test").replace(total_steps=200, checkpoint_every_steps=60)
    sweep.sweep("online", base, {"tau": [0.005, 0.01]}, 2, sys.argv[1], workers=1)
""")


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # fork+exec of a fresh interpreter is safe
def test_resume_after_a_kill_completes_without_duplicates(reference, tmp_path):
    out = tmp_path / "killed"
    runs = [p.resolve() for p in run_dirs(out)]
    proc = subprocess.run([sys.executable, "-c", KILLER, str(out), str(runs[1])], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert (runs[0] / "result.json").is_file() and not (runs[1] / "result.json").exists()
    assert (runs[1] / "checkpoint").is_dir() and not (runs[2]).exists()
    finished_at = (runs[0] / "result.json").stat().st_mtime_ns

    outcomes = sw.sweep("online", BASE, GRID, SEEDS, out, workers=1)  # the same experiment: resumes
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert (runs[0] / "result.json").stat().st_mtime_ns == finished_at  # not run again
    for mine, theirs in zip(runs, run_dirs(reference[0]), strict=True):
        assert run_files(mine) == run_files(theirs), mine  # every row once, none lost


def test_failing_runs_are_reported_and_others_finish(tmp_path):
    jobs = [Job("offline", BASE, 0, str(tmp_path / "bad"), dataset=str(tmp_path / "missing.h5")),
            Job("online", BASE.replace(env="NoSuchEnv-v0"), 0, str(tmp_path / "bad-env")),
            Job("online", BASE, 5, str(tmp_path / "good"))]
    seen = []
    outcomes = run_jobs(jobs, workers=2, on_done=seen.append)
    assert [o.job for o in outcomes] == jobs and len(seen) == 3
    assert "dataset not found" in outcomes[0].error and outcomes[0].summary is None
    assert "NoSuchEnv-v0" in outcomes[1].error and "\n" not in outcomes[1].error
    assert outcomes[2].ok and outcomes[2].summary["steps"] == 200
    assert (tmp_path / "good" / "result.json").is_file()


def test_offline_sweep_on_a_replay_dataset(reference, tmp_path):
    dataset = run_dirs(reference[0])[0] / "replay.h5"
    outcomes = sw.sweep("offline", BASE.replace(epochs=1), {"cql_weight": [0, 5]}, 1, tmp_path / "off",
                        dataset=dataset, workers=1)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert json.loads((tmp_path / "off" / "sweep.json").read_text())["dataset"] == str(dataset.resolve())
    rows = [(tmp_path / "off" / f"cql_weight={w}" / "seed-0" / "evaluations.csv").read_text().splitlines()
            for w in ("0.0", "5.0")]
    assert len(rows[0]) == len(rows[1]) == 2 and rows[0][1] != rows[1][1]  # the penalty changes the critics


def test_missing_ray_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SaclabError, match=r"pip install 'saclab\[ray\]'"):
        run_jobs([Job("online", BASE, 0, "unused")], backend="ray")


# --- the command line ---------------------------------------------------------------------
def assert_one_line_error(capsys, argv, fragment):
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "error:" in lines[0] and fragment in lines[0], lines[0]


@pytest.mark.parametrize("args,fragment", [
    ([], "saclab sweep online|offline"),
    (["sideways"], "got 'sideways'"),
    (["online", "--set", "nope=1,2"], "unknown config field 'nope'"),
    (["online", "--set", "batch_size=big"], "bad value 'big' for batch_size"),
    (["online", "--set", "gamma=0.9,2"], "gamma must be in [0, 1)"),
    (["offline", "--preset", "test"], "needs --dataset"),
    (["offline", "--dataset", "/no/such/file.h5"], "dataset not found"),
    (["online", "--dataset", "x.h5"], "--dataset is for offline"),
    (["online", "--address", "ray://x:1"], "--address needs --backend ray"),
    (["online", "--env", "NoSuchEnv-v0"], "unknown environment"),
    (["online", "--seeds", "0"], "--seeds must be >= 1"),
    (["online", "--no-such-flag"], "--no-such-flag"),
])
def test_cli_errors_are_one_line(capsys, tmp_path, args, fragment):
    assert_one_line_error(capsys, ["sweep", *args, "--out", str(tmp_path / "o")] if args else ["sweep"], fragment)
    assert not (tmp_path / "o").exists()


def test_cli_resumes_and_summarizes_the_same_experiment(reference, capsys):
    out = reference[0]
    assert main(["sweep", "online", *CLI_BASE, "--out", str(out), "--workers", "1"]) == 0  # all finished: skips
    captured = capsys.readouterr()
    assert "resuming online, 2 configuration(s) x 2 seed(s)" in captured.err
    assert "tau=0.005" in captured.out and "tau=0.01" in captured.out
    for name in ("summary.csv", "summary.md", "curves.png"):
        assert (out / name).is_file()
    assert main(["summarize", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("configuration") and [line.split()[:2] for line in table[2:]] == [
        ["tau=0.005", "2"], ["tau=0.01", "2"]]
    assert_one_line_error(capsys, ["sweep", "online", *CLI_BASE[:-1], "3", "--out", str(out)],
                          "holds a different sweep (differs in seeds)")
    assert_one_line_error(capsys, ["summarize", str(out / "nothing")], "not found")
