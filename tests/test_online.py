import json

import numpy as np
import pytest
from resuming import crash_then_resume

from saclab.config import preset
from saclab.runs.checkpoint import pytree_to_arrays
from saclab.runs.online import train_online

CONFIG = preset("test").replace(total_steps=900, checkpoint_every_steps=300, eval_every_episodes=4)


class Crash(RuntimeError):
    pass


def params(result):
    return pytree_to_arrays(result.state)


def test_same_seed_same_run_and_run_directory(tmp_path):
    a = train_online(CONFIG, seed=3, run_dir=tmp_path / "a", progress=False)
    b = train_online(CONFIG, seed=3, run_dir=tmp_path / "b", progress=False)
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in a.evaluations]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in b.evaluations]
    for k, v in params(a).items():
        np.testing.assert_array_equal(v, params(b)[k])
    for name in ("config.json", "evaluations.csv", "metrics.jsonl", "result.json", "replay.h5",
                 "checkpoint/state.safetensors", "checkpoint/buffer.safetensors", "checkpoint/meta.json"):
        assert (tmp_path / "a" / name).is_file(), name
    assert a.summary["steps"] == 900
    # every evaluation after the first update holds the temperature and the critic against its bound
    last = a.evaluations[-1]
    assert last["alpha"] > 0 and 0 <= last["entropy"] <= np.log(2) + 1e-6 and last["q_data"] < last["q_bound"]
    assert last["q_bound"] == pytest.approx(1.0 / (1 - CONFIG.gamma))  # CartPole: r_max 1, no entropy backup
    assert a.summary["final_alpha"] == last["alpha"] and a.summary["alpha_runaway"] is False
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["total_steps"] == 900


def test_different_seeds_differ(tmp_path):
    a = train_online(CONFIG.replace(total_steps=300), seed=0, run_dir=tmp_path / "a", progress=False)
    b = train_online(CONFIG.replace(total_steps=300), seed=1, run_dir=tmp_path / "b", progress=False)
    assert any(not np.array_equal(v, params(b)[k]) for k, v in params(a).items())


def test_resume_after_a_crash_gives_the_uninterrupted_run(tmp_path):
    full = train_online(CONFIG, seed=0, run_dir=tmp_path / "full", progress=False)

    def crash(info):
        if info["step"] > 650:
            raise Crash()

    with pytest.raises(Crash):
        train_online(CONFIG, seed=0, run_dir=tmp_path / "cut", progress=False, on_episode_end=crash)
    meta = json.loads((tmp_path / "cut" / "checkpoint" / "meta.json").read_text())
    assert 300 <= meta["counters"]["step"] < 900  # a mid-run checkpoint exists
    resumed = train_online(CONFIG, seed=0, run_dir=tmp_path / "cut", resume=True, progress=False)
    for k, v in params(full).items():
        np.testing.assert_array_equal(v, params(resumed)[k], err_msg=k)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(resumed.evaluations) == strip(full.evaluations)
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()


def test_update_every_k_keeps_the_update_count_and_resumes_exactly(tmp_path):
    # K=4: the updates of 4 steps run together every 4th step, so a run does as many updates as with K=1
    # (from learning_starts on) and a resumed run still equals the uninterrupted one.
    config = CONFIG.replace(update_every=4, total_steps=700)
    full = train_online(config, seed=0, run_dir=tmp_path / "full", progress=False)
    first = max(config.learning_starts, 4)  # the first step with a full buffer that is a multiple of 4
    first += -first % 4
    assert int(full.state.updates) == 4 * ((700 - first) // 4 + 1)
    each_step = train_online(config.replace(update_every=1), seed=0, run_dir=tmp_path / "k1", progress=False)
    assert any(not np.array_equal(v, params(each_step)[k]) for k, v in params(full).items())
    # a replay ratio of 1/4 (CleanRL's Atari setting): one update every 4th step, a quarter of the count
    quarter = train_online(config.replace(updates_per_step=0.25), seed=0, run_dir=tmp_path / "q", progress=False)
    assert int(quarter.state.updates) == (700 - first) // 4 + 1
    resumed = crash_then_resume(train_online, config, tmp_path / "cut", after_step=450)
    for k, v in params(full).items():
        np.testing.assert_array_equal(v, params(resumed)[k], err_msg=k)
    # a fractional replay ratio reads back from the checkpoint (its config field is a float)
    resumed = crash_then_resume(train_online, config.replace(updates_per_step=0.25), tmp_path / "cutq", after_step=450)
    for k, v in params(quarter).items():
        np.testing.assert_array_equal(v, params(resumed)[k], err_msg=k)


def test_resume_of_a_finished_run_returns_it(tmp_path):
    a = train_online(CONFIG.replace(total_steps=300), seed=0, run_dir=tmp_path / "a", progress=False)
    again = train_online(CONFIG.replace(total_steps=300), seed=0, run_dir=tmp_path / "a", resume=True)
    assert again.summary == a.summary


def test_notebook_switch_treats_truncation_as_terminal(tmp_path):
    # max_episode_steps=20 truncates every CartPole episode at 20 steps; both runs learn from the
    # same transitions, only the bootstrap differs, so the parameters must differ.
    c = CONFIG.replace(total_steps=200, max_episode_steps=20, learning_starts=64)
    a = train_online(c, seed=0, run_dir=tmp_path / "a", progress=False)
    b = train_online(c.replace(truncation_is_terminal=True), seed=0, run_dir=tmp_path / "b", progress=False)
    assert any(not np.array_equal(v, params(b)[k]) for k, v in params(a).items())


@pytest.mark.parametrize("update_every", [1, 4])
def test_prioritised_replay_updates_the_priorities_it_samples_by(tmp_path, monkeypatch, update_every):
    # After a prioritised run the sampled transitions' priorities are their |TD errors| (the others
    # keep the maximum they were inserted with), so they differ from one another.  Were priorities
    # never updated, all would still be the initial 1.0.
    from saclab.data.buffer import ReplayBuffer

    buffers = []
    init = ReplayBuffer.__init__

    def keep(self, *args, **kwargs):
        init(self, *args, **kwargs)
        buffers.append(self)

    monkeypatch.setattr(ReplayBuffer, "__init__", keep)
    r = train_online(CONFIG.replace(total_steps=300, prioritized_replay=True, update_every=update_every), seed=0,
                     run_dir=tmp_path / "p", progress=False, save_replay=False)
    assert r.summary["steps"] == 300
    (buffer,) = buffers
    priorities = buffer.tree.get(np.arange(len(buffer)))
    assert len(np.unique(priorities)) > len(buffer) // 2


def test_divergence_is_a_clear_error_and_keeps_the_last_checkpoint(tmp_path):
    from saclab.errors import SaclabError

    good = CONFIG.replace(total_steps=300)
    train_online(good, seed=0, run_dir=tmp_path, progress=False)
    before = (tmp_path / "checkpoint" / "state.safetensors").read_bytes()
    bad = CONFIG.replace(total_steps=400, critic_lr=1e30, actor_lr=1e30, eval_every_episodes=2)
    with pytest.raises(SaclabError, match="training diverged: non-finite loss"):
        train_online(bad, seed=1, run_dir=tmp_path / "bad", progress=False)
    assert (tmp_path / "checkpoint" / "state.safetensors").read_bytes() == before
    assert not (tmp_path / "bad" / "checkpoint").exists()


def test_a_finished_run_extends_to_a_larger_budget(tmp_path):
    short = train_online(CONFIG.replace(total_steps=300), seed=0, run_dir=tmp_path, progress=False)
    longer = train_online(CONFIG.replace(total_steps=500), seed=0, run_dir=tmp_path, resume=True, progress=False)
    assert short.summary["steps"] == 300 and longer.summary["steps"] == 500
    steps = [row["step"] for row in longer.evaluations]
    assert steps == sorted(steps) and steps[-1] == 500 and 300 in steps


def test_an_evaluation_log_from_an_older_version_is_widened_not_garbled(tmp_path):
    from saclab.runs.runlog import RunLog, read_evaluations

    (tmp_path / "evaluations.csv").write_text("step,return_mean,time_s\n100,9.5,1.0\n")
    log = RunLog(tmp_path, tensorboard=False, resume_step=100)  # an extended run keeps its rows
    log.log_eval({"step": 200, "return_mean": 20.0, "alpha": 0.5, "time_s": 2.0})
    log.close()
    rows = read_evaluations(tmp_path)
    assert rows[0]["return_mean"] == 9.5 and rows[0]["time_s"] == 1.0 and rows[0]["alpha"] in (None, "")
    assert rows[1] == {"step": 200, "return_mean": 20.0, "alpha": 0.5, "time_s": 2.0}
