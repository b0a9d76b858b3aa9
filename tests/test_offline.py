"""Offline training (epochs, sampler, determinism, resume), collection and the offline CLI."""

import json

import numpy as np
import pytest

from saclab.cli.main import main
from saclab.config import preset
from saclab.core.losses import value_bound
from saclab.data.collect import collect
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.runs.checkpoint import pytree_to_arrays
from saclab.runs.epochs import device_batch, epoch_indices, notebook_epoch_indices, notebook_permutation
from saclab.runs.offline import train_offline
from saclab.runs.policy import Policy
from saclab.runs.tiers import collect_tier

CONFIG = preset("test").replace(epochs=3, batch_size=64, offline_eval_episodes=3, max_episode_steps=50)


def scripted(obs: np.ndarray) -> np.ndarray:
    """A CartPole controller: push towards the side the pole is falling to."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return collect(scripted, "CartPole-v1", steps=700, epsilon=0.3, seed=0, max_episode_steps=50, num_envs=4)


@pytest.fixture(scope="module")
def dataset_file(dataset, tmp_path_factory) -> str:
    return str(dataset.save(tmp_path_factory.mktemp("data") / "d.h5"))


def params(result):
    return pytree_to_arrays(result.state)


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


# --- epochs ------------------------------------------------------------------------------
def test_an_epoch_visits_every_transition_at_most_once():
    rng = np.random.default_rng(0)
    idx = epoch_indices(rng, 1000, 64)
    assert idx.shape == (15, 64) and idx.dtype == np.int32
    flat = idx.ravel()
    assert len(np.unique(flat)) == len(flat) == 960 and flat.min() >= 0 and flat.max() < 1000
    exact = epoch_indices(rng, 640, 64)  # N divisible by the batch: every transition exactly once
    np.testing.assert_array_equal(np.sort(exact.ravel()), np.arange(640))
    assert not np.array_equal(epoch_indices(rng, 640, 64), exact)  # a fresh permutation each epoch


def test_training_feeds_each_transition_once_per_epoch(dataset, tmp_path, monkeypatch):
    # What the loop actually passes to the update: every epoch a fresh set of minibatches that
    # holds no transition twice and leaves out fewer than one minibatch of them.
    import saclab.runs.offline as offline

    seen = []
    real = offline.update_epoch

    def record(learner, state, data, indices):
        seen.append(np.asarray(indices))
        return real(learner, state, data, indices)

    monkeypatch.setattr(offline, "update_epoch", record)
    train_offline(CONFIG, dataset, seed=0, run_dir=tmp_path / "r", progress=False)
    n, batch = len(dataset), CONFIG.batch_size
    assert len(seen) == CONFIG.epochs
    for indices in seen:
        flat = indices.ravel()
        assert indices.shape == (n // batch, batch)
        assert len(np.unique(flat)) == len(flat) > n - batch and flat.min() >= 0 and flat.max() < n
    assert not np.array_equal(seen[0], seen[1])


def test_notebook_sampler_reads_empty_slots(dataset):
    n = len(dataset)
    perm = notebook_permutation(0, 500_000)
    idx = notebook_epoch_indices(perm, n, 100)
    assert idx.shape == (n // 100, 100)
    assert (idx == n).mean() > 0.99  # almost every index is an unwritten slot of the 500k capacity
    np.testing.assert_array_equal(idx, notebook_epoch_indices(notebook_permutation(0, 500_000), n, 100))
    data = device_batch(dataset, zero_row=True)
    assert data.obs.shape[0] == n + 1
    for name, field in zip(data._fields, data, strict=True):
        row = np.asarray(field[n])
        assert np.all(row == (1 if name in ("weights", "horizons") else 0))  # a one-step, unweighted empty slot
    with pytest.raises(SaclabError, match="buffer_size"):
        notebook_epoch_indices(np.arange(100), n, 100)


def test_truncation_is_terminal_switch(dataset):
    plain = np.asarray(device_batch(dataset).terminated)
    notebook = np.asarray(device_batch(dataset, truncation_is_terminal=True).terminated)
    np.testing.assert_array_equal(plain, dataset.terminations)
    np.testing.assert_array_equal(notebook, dataset.terminations | dataset.truncations)
    assert dataset.truncations.any()


def test_value_bound():
    assert value_bound(1.0, 0.99) == pytest.approx(100.0)
    assert value_bound(-1.0, 0.99) == -1.0


# --- training ----------------------------------------------------------------------------
def test_same_seed_same_run(dataset, tmp_path):
    a = train_offline(CONFIG, dataset, seed=1, run_dir=tmp_path / "a", progress=False, tensorboard=False)
    b = train_offline(CONFIG, dataset, seed=1, run_dir=tmp_path / "b", progress=False, tensorboard=False)
    for k, v in params(a).items():
        np.testing.assert_array_equal(v, params(b)[k], err_msg=k)
    assert strip_time(a.evaluations) == strip_time(b.evaluations)
    rows = a.evaluations
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["step"] for r in rows] == [len(dataset) // 64 * e for e in (1, 2, 3)]
    for key in ("return_mean", "return_std", "return_min", "return_max", "q_data", "q_greedy", "mc_return",
                "q_bound", "overestimated", "time_s"):
        assert key in rows[0], key
    assert rows[0]["mc_return"] == pytest.approx(dataset.discounted_returns(CONFIG.gamma).mean())
    assert json.loads((tmp_path / "a" / "config.json").read_text())["kind"] == "offline"
    metrics = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3] and "critic_loss" in metrics[0]
    c = train_offline(CONFIG, dataset, seed=2, run_dir=tmp_path / "c", progress=False, tensorboard=False)
    assert any(not np.array_equal(v, params(c)[k]) for k, v in params(a).items())


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_gives_the_uninterrupted_run(dataset, tmp_path):
    full = train_offline(CONFIG, dataset, seed=0, run_dir=tmp_path / "full", progress=False, tensorboard=False)

    def crash(row):
        if row["epoch"] == 2:
            raise Crash()

    with pytest.raises(Crash):
        train_offline(CONFIG, dataset, seed=0, run_dir=tmp_path / "cut", progress=False, tensorboard=False,
                      on_epoch_end=crash)
    meta = json.loads((tmp_path / "cut" / "checkpoint" / "meta.json").read_text())
    assert meta["counters"]["epoch"] == 2 and meta["dataset"]["sha256"] == dataset.fingerprint()
    assert not (tmp_path / "cut" / "result.json").exists()
    resumed = train_offline(CONFIG, dataset, seed=0, run_dir=tmp_path / "cut", resume=True, progress=False,
                            tensorboard=False)
    for k, v in params(full).items():
        np.testing.assert_array_equal(v, params(resumed)[k], err_msg=k)
    assert strip_time(resumed.evaluations) == strip_time(full.evaluations)
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    again = train_offline(CONFIG, dataset, seed=0, run_dir=tmp_path / "cut", resume=True)
    assert again.summary == resumed.summary  # a finished run is returned as is
    other = collect("random", "CartPole-v1", steps=300, seed=5)
    (tmp_path / "cut" / "result.json").unlink()
    with pytest.raises(SaclabError, match="different dataset"):
        train_offline(CONFIG, other, seed=0, run_dir=tmp_path / "cut", resume=True)


def test_notebook_sampler_trains(dataset, tmp_path):
    c = CONFIG.replace(epochs=1, notebook_epoch_sampler=True, buffer_size=5000)
    r = train_offline(c, dataset, seed=0, run_dir=tmp_path / "nb", progress=False, tensorboard=False)
    assert r.summary["updates"] == len(dataset) // 64


def test_divergence_is_an_error_and_nothing_is_checkpointed(dataset, tmp_path):
    huge = Dataset(dataset.observations, dataset.actions, np.full(len(dataset), 3e38, np.float32),
                   dataset.next_observations, dataset.terminations, dataset.truncations, dataset.episode_starts,
                   metadata=dict(dataset.metadata))
    with pytest.raises(SaclabError, match="diverged: non-finite .* epoch 1"):
        train_offline(CONFIG, huge, seed=0, run_dir=tmp_path / "nan", progress=False, tensorboard=False)
    assert not (tmp_path / "nan" / "checkpoint").exists()


def test_overestimation_is_flagged(dataset, tmp_path, capsys):
    # All rewards 0: every return is 0, but the soft Q-values take the entropy bonus, so Q > bound = 0.
    zero = Dataset(dataset.observations, dataset.actions, np.zeros(len(dataset), np.float32),
                   dataset.next_observations, dataset.terminations, dataset.truncations, dataset.episode_starts,
                   metadata=dict(dataset.metadata))
    r = train_offline(CONFIG.replace(epochs=2, autotune_alpha=False, entropy_backup=True), zero, seed=0,
                      run_dir=tmp_path / "o",
                      progress=False, tensorboard=False)
    assert r.evaluations[0]["q_bound"] == 0.0
    assert [str(row["overestimated"]) for row in r.evaluations] == ["True", "True"]
    err = capsys.readouterr().err
    assert "saclab: warning: " in err and "epoch 1: mean Q" in err and "exceeds r_max/(1-gamma) = 0.0" in err
    assert err.count("saclab: warning:") == 1  # once per run; later epochs are flagged in the log


def test_wrong_env_and_tiny_dataset_are_refused(dataset, tmp_path):
    with pytest.raises(SaclabError, match="collected on CartPole-v1"):
        train_offline(CONFIG.replace(env="Acrobot-v1"), dataset, run_dir=tmp_path / "x")
    anon = Dataset(dataset.observations, dataset.actions, dataset.rewards, dataset.next_observations,
                   dataset.terminations, dataset.truncations, dataset.episode_starts)
    with pytest.raises(SaclabError, match="obs_dim=4, 2 actions; Acrobot-v1 has obs_dim=6, 3 actions"):
        train_offline(CONFIG.replace(env="Acrobot-v1"), anon, run_dir=tmp_path / "x")
    with pytest.raises(SaclabError, match="fewer than one minibatch"):
        train_offline(CONFIG.replace(batch_size=1000), dataset, run_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


# --- collection --------------------------------------------------------------------------
def test_collect_episode_boundaries_without_reset_steps():
    d = collect("random", "CartPole-v1", episodes=30, seed=3, max_episode_steps=15, num_envs=4)
    assert d.info()["episodes"] == 30
    assert np.all(d.rewards == 1.0)  # an autoreset step (reward 0) never slips in
    ends = np.flatnonzero(d.terminations | d.truncations)
    starts = np.flatnonzero(d.episode_starts)
    assert len(ends) == len(starts) == 30 and starts[0] == 0
    np.testing.assert_array_equal(starts[1:], ends[:-1] + 1)  # episodes are contiguous
    assert ends[-1] == len(d) - 1
    inside = ~d.episode_starts[1:]
    np.testing.assert_array_equal(d.next_observations[:-1][inside], d.observations[1:][inside])
    lengths = np.diff(np.append(starts, len(d)))
    assert np.all(lengths[d.truncations[ends]] == 15) and np.all(lengths <= 15)
    # (a pole that falls exactly at the cap is both terminated and truncated: terminated wins, no bootstrap)
    again = collect("random", "CartPole-v1", episodes=30, seed=3, max_episode_steps=15, num_envs=4)
    np.testing.assert_array_equal(d.observations, again.observations)
    np.testing.assert_array_equal(d.actions, again.actions)
    assert d.metadata["policy"] == "random" and d.metadata["max_episode_steps"] == 15


def test_collect_by_steps_and_with_a_callable():
    d = collect(scripted, "CartPole-v1", steps=250, seed=0, num_envs=3, max_episode_steps=40)
    assert len(d) == 250 and d.metadata["policy"] == "scripted"
    assert np.all(d.rewards == 1.0)
    # The controller survives to the cap: 2 complete episodes of 40 steps per sub-env, then the
    # unfinished ones (4 steps each, cut to 250 in all), whose last step is neither terminal nor truncated.
    assert d.truncations.sum() == 6 and d.terminations.sum() == 0
    np.testing.assert_array_equal(np.flatnonzero(d.episode_starts), [0, 40, 80, 120, 160, 200, 240, 244, 248])
    with pytest.raises(SaclabError, match="exactly one budget"):
        collect("random", "CartPole-v1")
    with pytest.raises(SaclabError, match="needs a checkpoint"):
        collect("greedy", "CartPole-v1", episodes=1)


def test_collect_tiers_from_a_checkpoint(dataset, tmp_path):
    run = train_offline(CONFIG.replace(epochs=1), dataset, seed=0, run_dir=tmp_path / "agent", progress=False,
                        tensorboard=False)
    expert = collect_tier("expert", checkpoint=run.dir, episodes=4, seed=0, max_episode_steps=50)
    assert expert.metadata["tier"] == "expert" and expert.metadata["policy"] == "greedy"
    medium = collect_tier("medium", checkpoint=run.dir, episodes=4, seed=0, max_episode_steps=50,
                          calibration_episodes=4)
    assert medium.metadata["tier"] == "medium" and 0.0 <= medium.metadata["epsilon"] <= 1.0
    m = medium.metadata  # the target lies halfway from the random policy's return to the expert's
    assert m["target_return"] == pytest.approx(m["random_return"] + 0.5 * (m["expert_return"] - m["random_return"]))
    stochastic = collect("stochastic", agent=Policy.load(run.dir), steps=100, seed=0)
    assert len(stochastic) == 100 and stochastic.env_id == "CartPole-v1"


# --- CLI ---------------------------------------------------------------------------------
def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys, dataset_file):
    assert main(["offline", "--dataset", str(tmp_path / "missing.h5")]) == 2
    assert "dataset not found" in error_line(capsys)
    (tmp_path / "junk.h5").write_text("junk")
    assert main(["offline", "--dataset", str(tmp_path / "junk.h5")]) == 2
    assert "corrupt dataset" in error_line(capsys)
    assert main(["offline", "--dataset", dataset_file, "--env", "Acrobot-v1"]) == 2
    assert "collected on CartPole-v1" in error_line(capsys)
    assert main(["offline"]) == 2
    assert "--dataset FILE is required" in error_line(capsys)
    assert main(["offline", "--dataset", dataset_file, "--cql-weight", "-1"]) == 2
    assert "cql_weight" in error_line(capsys)
    assert main(["dataset", "info", str(tmp_path / "junk.h5")]) == 2
    assert "corrupt dataset" in error_line(capsys)
    assert main(["dataset", "frobnicate"]) == 2
    error_line(capsys)
    out = tmp_path / "taken.h5"
    out.write_text("precious")
    assert main(["collect", "--policy", "random", "--env", "CartPole-v1", "--episodes", "2", "--out", str(out)]) == 2
    assert "already exists" in error_line(capsys) and out.read_text() == "precious"
    assert main(["collect", "--policy", "greedy", "--env", "CartPole-v1", "--episodes", "2",
                 "--out", str(tmp_path / "g.h5")]) == 2
    assert "needs --checkpoint" in error_line(capsys) and not (tmp_path / "g.h5").exists()
    assert not list(tmp_path.glob("runs"))


def test_cli_collect_info_offline(tmp_path, capsys, dataset_file):
    out = tmp_path / "r.h5"
    assert main(["collect", "--policy", "random", "--env", "CartPole-v1", "--episodes", "3", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    assert main(["dataset", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 3 and info["env_id"] == "CartPole-v1" and info["policy"] == "random"
    run = tmp_path / "run"
    argv = ["offline", "--dataset", dataset_file, "--preset", "test", "--batch-size", "64", "--epochs", "1",
            "--offline-eval-episodes", "2", "--cql-weight", "5", "--out", str(run)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cql_weight"] == 5.0 and summary["epochs"] == 1
    assert main(argv) == 2  # the run exists: refuse, keep it
    assert "already holds a run" in error_line(capsys)
    assert (run / "seed-0" / "result.json").is_file()
