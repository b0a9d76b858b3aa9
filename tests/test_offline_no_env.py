"""Offline runs without a simulator (env ""): a CSV log to a CQL run end to end on the command line,
behaviour cloning matching a deterministic data policy, and exact resume of both."""

import csv
import json

import numpy as np
import pytest

from saclab.cli.main import main
from saclab.config import preset
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.runs.checkpoint import pytree_to_arrays
from saclab.runs.offline import train_offline
from saclab.runs.policy import Policy

OFFLINE_COLUMNS = ("td_error", "initial_value", "cql_gap", "action_agreement", "policy_entropy", "action_nll")


def write_log(path, episodes=12, length=30, seed=0):
    """A log of a made-up process with 3 observations and 3 actions; the policy that wrote it picks
    the argmax of the first three features; every episode ends terminated."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["session", "x_0", "x_1", "x_2", "act", "reward", "terminated", "truncated"])
        for episode in range(episodes):
            for t in range(length):
                x = rng.normal(size=3)
                out.writerow([f"s{episode}", *x.round(4), int(np.argmax(x)), float(x[0] > 0), int(t == length - 1),
                              0])
    return path


def deterministic_dataset(n=2000, seed=0) -> Dataset:
    """States x ~ N(0, I) in 4-D, actions argmax(x W) of a fixed W: a deterministic data policy."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, 4)).astype(np.float32)
    weights = rng.normal(size=(4, 3))
    starts = np.arange(n) % 50 == 0
    return Dataset(obs[:-1], np.argmax(obs[:-1] @ weights, axis=1), np.zeros(n), obs[1:],
                   np.append(starts[1:], True), np.zeros(n, bool), starts, metadata={"num_actions": 3})


def test_csv_to_cql_without_a_simulator(tmp_path, capsys):
    log = write_log(tmp_path / "log.csv")
    data = tmp_path / "log.h5"
    assert main(["dataset", "import", str(log), "--out", str(data),
                 "--columns", "obs_=x_,action=act,episode=session", "--reward-scale", "2"]) == 0
    out = tmp_path / "cql"
    assert main(["offline", "--dataset", str(data), "--preset", "test", "--cql-weight", "5", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "no simulator" in captured.err and "no return curve" in captured.err
    run = out / "seed-0"
    rows = [r for r in csv.DictReader(open(run / "evaluations.csv"))]
    assert [int(r["epoch"]) for r in rows] == [1, 2] and "return_mean" not in rows[0]
    assert all(name in rows[0] for name in OFFLINE_COLUMNS)
    result = json.loads((run / "result.json").read_text())
    assert result["simulator"] is False and "final_td_error" in result and "final_return" not in result
    held = json.loads((run / "config.json").read_text())["held_out"]
    assert held["split"] == "validation" and held["validation_fraction"] == 0.1 and held["metric_episodes"] == 1
    # mc_return is computed on the scaled rewards (reward_scale 2)
    assert float(rows[0]["mc_return"]) > 0 and float(rows[0]["q_bound"]) == pytest.approx(2 / (1 - 0.99))
    # commands that need returns or a simulator: one line, exit 2
    for argv in (["plot", str(out)], ["evaluate", str(run), "--episodes", "2"],
                 ["evaluate", str(run), "--env", "CartPole-v1", "--episodes", "2"]):
        assert main(argv) == 2, argv
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    # summarize compares what the runs measured on their data instead of returns
    assert main(["summarize", str(out)]) == 0
    captured = capsys.readouterr()
    assert "no returns in" in captured.err and "TD error" in captured.out
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert len(summary) == 1 and summary[0]["n"] == "1" and summary[0]["split"] == "validation"
    assert float(summary[0]["td_error_mean"]) == pytest.approx(result["final_td_error"])
    assert "| cql | 1 | validation |" in (out / "summary.md").read_text()
    policy = Policy.load(run)
    assert policy.act(np.zeros((5, 3))).shape == (5,) and policy.q_values(np.zeros((1, 3))).shape == (1, 3)
    with pytest.raises(SaclabError, match="without a simulator"):
        policy.evaluate(2)


def test_behaviour_cloning_matches_a_deterministic_policy(tmp_path):
    data = deterministic_dataset()
    config = preset("test").replace(env="", algo="bc", epochs=15, actor_lr=3e-3, validation_fraction=0.2)
    result = train_offline(config, data, seed=0, run_dir=tmp_path / "bc", progress=False, tensorboard=False)
    last = result.evaluations[-1]
    assert last["action_agreement"] > 0.9, last  # on held-out episodes
    assert "td_error" not in last and "q_data" not in last
    metrics = [json.loads(line) for line in (tmp_path / "bc" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["bc_loss"] < metrics[0]["bc_loss"]
    policy = Policy.load(tmp_path / "bc")
    obs = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)
    assert np.mean(policy.act(obs) == policy.act(obs)) == 1.0


@pytest.mark.parametrize("algo", ["sac", "bc"])
def test_resume_gives_the_uninterrupted_run(tmp_path, algo):
    data = deterministic_dataset(n=400)
    config = preset("test").replace(env="", algo=algo, cql_weight=1.0 if algo == "sac" else 0.0)
    whole = train_offline(config.replace(epochs=3), data, seed=2, run_dir=tmp_path / "a", progress=False,
                          tensorboard=False)
    train_offline(config.replace(epochs=1), data, seed=2, run_dir=tmp_path / "b", progress=False, tensorboard=False)
    (tmp_path / "b" / "result.json").unlink()  # an interrupted run: no result yet
    resumed = train_offline(config.replace(epochs=3), data, seed=2, run_dir=tmp_path / "b", resume=True,
                            progress=False, tensorboard=False)
    for key, value in pytree_to_arrays(whole.state).items():
        np.testing.assert_array_equal(value, pytree_to_arrays(resumed.state)[key], err_msg=key)
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in whole.evaluations]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in resumed.evaluations]


def test_sweep_without_a_simulator(tmp_path, capsys):
    data = deterministic_dataset(n=300)
    data.save(tmp_path / "d.h5")
    out = tmp_path / "sweep"
    assert main(["sweep", "offline", "--dataset", str(tmp_path / "d.h5"), "--preset", "test", "--epochs", "1",
                 "--set", "algo=sac,bc", "--workers", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("no simulator:") == 2 and "no returns in" in captured.err
    table = list(csv.DictReader(open(out / "summary.csv")))
    assert [row["group"] for row in table] == ["algo=sac", "algo=bc"]
    assert table[0]["td_error_mean"] != "nan" and table[1]["td_error_mean"] == "nan"  # BC has no critic
    for algo in ("sac", "bc"):
        result = json.loads((out / f"algo={algo}" / "seed-0" / "result.json").read_text())
        assert result["simulator"] is False and result["algo"] == algo
