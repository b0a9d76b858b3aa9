"""The compiled online loop on gymnax envs: run files, same seed same numbers, exact resume, learning, MinAtar."""

import json

import jax
import numpy as np
import pytest

pytest.importorskip("gymnax")

from saclab.config import preset  # noqa: E402
from saclab.data import device_buffer  # noqa: E402
from saclab.data.dataset import Dataset  # noqa: E402
from saclab.errors import SaclabError  # noqa: E402
from saclab.runs.checkpoint import pytree_to_arrays  # noqa: E402
from saclab.runs.compiled_train import train_compiled, train_compiled_vmapped  # noqa: E402
from saclab.runs.online import train_online  # noqa: E402
from saclab.runs.runlog import read_metrics  # noqa: E402

CHUNK = 200
CONFIG = preset("test").replace(env="gymnax:CartPole-v1", total_steps=3 * CHUNK, checkpoint_every_steps=CHUNK,
                                eval_every_episodes=2)


class Crash(Exception):
    pass


def leaves(result) -> dict:
    return pytree_to_arrays(result.state)


def test_ring_buffer_writes_wrap_and_samples_what_it_holds():
    replay = device_buffer.empty_replay(3, (2,))
    for i in range(4):  # the fourth write overwrites the first
        replay = device_buffer.add(replay, np.full(2, i, np.float32), i, float(i), np.full(2, i + 1, np.float32),
                                   i == 3, False)
    assert int(replay.size) == 3 and int(replay.head) == 1
    np.testing.assert_array_equal(replay.actions, [3, 1, 2])
    batch = device_buffer.sample(replay, jax.random.PRNGKey(0), 50)
    assert set(np.asarray(batch.actions).tolist()) <= {1, 2, 3}
    np.testing.assert_array_equal(batch.rewards, np.asarray(batch.actions, np.float32))
    np.testing.assert_array_equal(batch.terminated, np.asarray(batch.actions) == 3)
    view = device_buffer.HostView(replay)  # oldest first
    np.testing.assert_array_equal(view.transition_rows().actions, [1, 2, 3])
    assert float(device_buffer.max_reward(replay)) == 3.0


def test_a_compiled_run_writes_the_run_files_and_same_seed_gives_same_numbers(tmp_path):
    a = train_online(CONFIG, seed=0, run_dir=tmp_path / "a", progress=False, tensorboard=False)
    for name in ("config.json", "evaluations.csv", "metrics.jsonl", "result.json", "replay.h5", "checkpoint"):
        assert (tmp_path / "a" / name).exists(), name
    assert a.summary["steps"] == 3 * CHUNK and a.summary["loop"] == "compiled"
    assert [row["step"] for row in a.evaluations][-1] == 3 * CHUNK
    assert json.loads((tmp_path / "a" / "config.json").read_text())["env"]["obs_shape"] == [4]
    b = train_online(CONFIG, seed=0, run_dir=tmp_path / "b", progress=False, tensorboard=False)
    for k, v in leaves(a).items():
        np.testing.assert_array_equal(v, leaves(b)[k], err_msg=k)
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")
    from saclab.data.dataset import Dataset

    data = Dataset.load(tmp_path / "a" / "replay.h5")
    assert len(data.transitions.actions) == 3 * CHUNK


def test_resume_after_a_crash_gives_the_uninterrupted_run_bit_for_bit(tmp_path):
    full = train_compiled(CONFIG, 0, tmp_path / "full", progress=False, tensorboard=False, save_replay=False,
                          chunk_steps=CHUNK)

    def crash(info):
        if info["step"] == 2 * CHUNK:
            raise Crash()

    with pytest.raises(Crash):
        train_compiled(CONFIG, 0, tmp_path / "cut", progress=False, tensorboard=False, save_replay=False,
                       chunk_steps=CHUNK, on_chunk_end=crash)
    meta = json.loads((tmp_path / "cut" / "checkpoint" / "meta.json").read_text())
    assert meta["counters"]["step"] == 2 * CHUNK
    resumed = train_compiled(CONFIG, 0, tmp_path / "cut", resume=True, progress=False, tensorboard=False,
                             save_replay=False, chunk_steps=CHUNK)
    for k, v in leaves(full).items():
        np.testing.assert_array_equal(v, leaves(resumed)[k], err_msg=k)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(resumed.evaluations) == strip(full.evaluations)
    assert read_metrics(tmp_path / "cut") == read_metrics(tmp_path / "full")
    with pytest.raises(SaclabError, match="steps per chunk"):
        train_compiled(CONFIG.replace(total_steps=4 * CHUNK), 0, tmp_path / "cut", resume=True, progress=False,
                       tensorboard=False, chunk_steps=100)
    with pytest.raises(SaclabError, match="seed 0, not 1"):
        train_compiled(CONFIG, 1, tmp_path / "cut", resume=True, progress=False, tensorboard=False,
                       chunk_steps=CHUNK)
    meta_file = tmp_path / "cut" / "checkpoint" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["train_returns"] = "lost"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(SaclabError, match="corrupt checkpoint .* train_returns"):
        train_compiled(CONFIG, 0, tmp_path / "cut", resume=True, progress=False, tensorboard=False,
                       chunk_steps=CHUNK)


def test_a_compiled_run_evaluates_from_its_checkpoint_as_in_training(tmp_path, capsys):
    from saclab.cli.main import main
    from saclab.runs.policy import Policy

    train_compiled(CONFIG, 0, tmp_path / "run", progress=False, tensorboard=False, save_replay=False,
                   chunk_steps=CHUNK)
    policy = Policy.load(tmp_path / "run")
    returns = policy.evaluate(7, seed=3)
    assert returns.shape == (7,) and np.all(returns >= 1)
    np.testing.assert_array_equal(returns, policy.evaluate(7, seed=3))  # seeded
    assert main(["evaluate", str(tmp_path / "run"), "--episodes", "7", "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["return_mean"] == pytest.approx(float(np.mean(returns)))


def test_collection_and_offline_training_run_on_gymnax_envs(tmp_path, capsys):
    # gymnax envs stepped from the host behind Gymnasium's API: a seeded collection repeats, each
    # transition's next observation is the next row's observation within an episode (the true final
    # one at its end, not gymnax's auto-reset), the cap truncates, and offline CQL evaluates episodes.
    from saclab.cli.main import main
    from saclab.data.collect import collect
    from saclab.envs.make import make_env

    data = collect("random", "gymnax:CartPole-v1", episodes=6, seed=3, num_envs=3)
    again = collect("random", "gymnax:CartPole-v1", episodes=6, seed=3, num_envs=3)
    np.testing.assert_array_equal(data.observations, again.observations)
    assert data.episode_starts.sum() == 6 and data.terminations.sum() == 6  # random CartPole falls
    inside = np.flatnonzero(~data.terminations[:-1] & ~data.episode_starts[1:])
    np.testing.assert_array_equal(data.next_observations[inside], data.observations[inside + 1])
    capped = collect("random", "gymnax:CartPole-v1", episodes=4, seed=0, num_envs=2, max_episode_steps=5)
    assert len(capped) == 20 and capped.truncations.sum() == 4
    env, spec = make_env("gymnax:Breakout-MinAtar")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10, 10, 4) and spec.num_actions == 3 and env.observation_space.contains(obs)
    assert obs.dtype == bool and spec.obs_dtype == "bool"  # gymnax's 0/1 floats kept as bool

    train_compiled(CONFIG, 0, tmp_path / "run", progress=False, tensorboard=False, save_replay=False,
                   chunk_steps=CHUNK)
    out = tmp_path / "medium.h5"
    assert main(["collect", "--checkpoint", str(tmp_path / "run"), "--tier", "medium", "--episodes", "6",
                 "--out", str(out)]) == 0
    assert Dataset.load(out).metadata["env_id"] == "gymnax:CartPole-v1"
    assert main(["offline", "--dataset", str(out), "--preset", "test", "--epochs", "2", "--cql-weight", "1",
                 "--eval-episodes", "3", "--out", str(tmp_path / "cql")]) == 0
    capsys.readouterr()
    rows = (tmp_path / "cql" / "seed-0" / "evaluations.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("step,epoch,return_mean")


def test_options_the_compiled_loop_lacks_are_refused(tmp_path):
    with pytest.raises(SaclabError, match="prioritized_replay"):
        train_online(CONFIG.replace(prioritized_replay=True), 0, tmp_path / "p", progress=False)
    with pytest.raises(SaclabError, match="update_every"):
        train_online(CONFIG.replace(update_every=4), 0, tmp_path / "u", progress=False)
    with pytest.raises(SaclabError, match="unknown gymnax"):
        train_online(CONFIG.replace(env="gymnax:Nope-v0"), 0, tmp_path / "n", progress=False)


def test_compiled_cartpole_learns_well_above_random(tmp_path):
    # A random policy keeps CartPole up for about 22 steps; 3000 steps of SAC hold it to the 100-step cap.
    config = CONFIG.replace(total_steps=3000, checkpoint_every_steps=0)
    result = train_online(config, seed=0, run_dir=tmp_path / "learn", progress=False, tensorboard=False,
                          save_replay=False)
    assert result.best_return >= 60


def test_minatar_breakout_runs_the_cnn_path_end_to_end(tmp_path):
    config = preset("test").replace(env="gymnax:Breakout-MinAtar", total_steps=150, learning_starts=64,
                                    batch_size=16, hidden_sizes=(32,), max_episode_steps=50, eval_episodes=2,
                                    checkpoint_every_steps=0)
    result = train_online(config, seed=0, run_dir=tmp_path / "breakout", progress=False, tensorboard=False)
    assert result.learner.encoder == "minatar_cnn"
    assert result.summary["steps"] == 150 and np.isfinite(result.final_return)
    assert "['EncodedMLP_0']['MinAtarEncoder_0']['kernel']" in pytree_to_arrays(result.state.actor_params)
    replay = Dataset.load(tmp_path / "breakout" / "replay.h5")  # images flat, with their shape
    assert len(replay) == 150 and replay.obs_shape == (10, 10, 4) and replay.observations.shape == (150, 400)
    assert replay.observations.dtype == bool and set(np.unique(replay.observations)) <= {False, True}


def test_vmapped_seeds_are_the_separate_runs_and_resume_exactly(tmp_path):
    # S seeds as one vmapped program: each seed's run files and numbers are its separate run's (to
    # the last bits of batched matrix products), and a crashed group resumes bit for bit.
    # Without Q-clip: its max of two branches turns last-bit differences into different branches.
    config = CONFIG.replace(q_clip=0.0)
    group = train_compiled_vmapped(config, [0, 1], tmp_path / "v", progress=False, tensorboard=False,
                                   save_replay=False, chunk_steps=CHUNK)
    assert [r.seed for r in group] == [0, 1] and all(r.summary["vmap_seeds"] == 2 for r in group)
    for result in group:
        alone = train_compiled(config, result.seed, tmp_path / f"alone-{result.seed}", progress=False,
                               tensorboard=False, save_replay=False, chunk_steps=CHUNK)
        assert [row["return_mean"] for row in result.evaluations] == [row["return_mean"] for row in alone.evaluations]
        assert [row["episode"] for row in result.evaluations] == [row["episode"] for row in alone.evaluations]
        if jax.default_backend() == "cpu":  # a GPU's TF32 products differ more between batched and single kernels
            for k, v in leaves(alone).items():
                np.testing.assert_allclose(leaves(result)[k], v, rtol=1e-3, atol=1e-4, err_msg=k)
    kernel = ".actor_params['MLP_0']['Dense_0']['kernel']"
    assert not np.allclose(leaves(group[0])[kernel], leaves(group[1])[kernel])  # two seeds, not one twice

    def crash(info):
        if info["step"] == 2 * CHUNK:
            raise Crash()

    with pytest.raises(Crash):
        train_compiled_vmapped(config, [0, 1], tmp_path / "cut", progress=False, tensorboard=False,
                               save_replay=False, chunk_steps=CHUNK, on_chunk_end=crash)
    resumed = train_compiled_vmapped(config, [0, 1], tmp_path / "cut", resume=True, progress=False,
                                     tensorboard=False, save_replay=False, chunk_steps=CHUNK)
    for full, again in zip(group, resumed, strict=True):
        for k, v in leaves(full).items():
            np.testing.assert_array_equal(v, leaves(again)[k], err_msg=k)
        assert read_metrics(full.dir) == read_metrics(again.dir)

    with pytest.raises(Crash):  # seed 1's checkpoint one chunk behind seed 0's
        train_compiled_vmapped(config, [0, 1], tmp_path / "apart", progress=False, tensorboard=False,
                               save_replay=False, chunk_steps=CHUNK, on_chunk_end=crash)
    import shutil

    shutil.rmtree(tmp_path / "apart" / "seed-1")
    with pytest.raises(Crash):
        train_compiled(config, 1, tmp_path / "apart" / "seed-1", progress=False, tensorboard=False,
                       save_replay=False, chunk_steps=CHUNK,
                       on_chunk_end=lambda info: crash({"step": 2 * info["step"]}))  # stops at step 200
    with pytest.raises(SaclabError, match="cannot resume the seeds together: their checkpoints are at steps 200, 400"):
        train_compiled_vmapped(config, [0, 1], tmp_path / "apart", resume=True, progress=False, tensorboard=False,
                               chunk_steps=CHUNK)


def test_train_vmap_from_the_command_line(tmp_path, capsys):
    from saclab.cli.main import main

    out = tmp_path / "runs"
    assert main(["train", "--env", "gymnax:CartPole-v1", "--preset", "test", "--total-steps", "300", "--seeds", "2",
                 "--vmap", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("  done  ") == 2
    for seed in (0, 1):
        result = json.loads((out / f"seed-{seed}" / "result.json").read_text())
        assert result["steps"] == 300 and result["vmap_seeds"] == 2
        assert (out / f"seed-{seed}" / "replay.h5").is_file()
