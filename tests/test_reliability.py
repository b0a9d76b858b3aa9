"""saclab's reliability promises (docs/reliability.md): one writer per directory, no code imported
because a file names it, logs that survive a torn last line, checks before work starts."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from saclab.cli.main import main
from saclab.config import TEST
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.locks import directory_lock, holder_pid
from saclab.runs.runlog import RunLog, read_evaluations, read_metrics

TRAIN = ("train", "--preset", "test", "--total-steps", "300")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny online run (copied by the tests that damage it)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def hold_lock_in_child(directory):
    """A child process holding ``directory``'s lock, as a second saclab would."""
    code = ("import sys, time\nfrom saclab.locks import directory_lock\n"
            f"with directory_lock({str(directory)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


# ---------------------------------------------------------------------------------------
# One writer per run, sweep and study directory
# ---------------------------------------------------------------------------------------
def test_second_writer_on_one_out_is_refused_with_the_holders_pid(capsys, tmp_path):
    out = tmp_path / "run"
    child = hold_lock_in_child(out)
    try:
        code, _, err = run(capsys, *TRAIN, "--out", out)
        assert_one_line_error(code, err, "in use", f"process {child.pid}")
        code, _, err = run(capsys, "sweep", "online", "--preset", "test", "--out", out)
        assert_one_line_error(code, err, "in use", str(child.pid))
        assert not (out / "sweep.json").exists() and not (out / "seed-0").exists()  # nothing written
    finally:
        child.kill()
        child.wait()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    child = hold_lock_in_child(tmp_path / "d")
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert holder_pid(tmp_path / "d") == child.pid  # its record is left, its OS lock is not
    with directory_lock(tmp_path / "d"):
        assert holder_pid(tmp_path / "d") == os.getpid()
        with directory_lock(tmp_path / "d"):  # the same process may nest
            pass


def test_second_writer_in_one_process_is_refused(tmp_path):
    from filelock import FileLock

    other = FileLock(str(tmp_path / ".saclab.lock"))  # another holder: a second open file
    other.acquire()
    try:
        with pytest.raises(SaclabError, match="in use"), directory_lock(tmp_path):
            pass
    finally:
        other.release()


# ---------------------------------------------------------------------------------------
# No code is imported because a file names it
# ---------------------------------------------------------------------------------------
@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """``evilmod.py``, importable from the working directory, that leaves a marker if imported."""
    marker = tmp_path / "imported"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').write('evil')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    assert not marker.exists() and "evilmod" not in sys.modules


def small_dataset(env_id: str) -> Dataset:
    n = 128
    rng = np.random.default_rng(0)
    return Dataset(rng.normal(size=(n, 4)), rng.integers(0, 2, n), np.ones(n), rng.normal(size=(n, 4)),
                   np.zeros(n, bool), np.zeros(n, bool), np.eye(1, n, dtype=bool)[0],
                   metadata={"env_id": env_id, "num_actions": 2, "obs_dim": 4})


def test_dataset_naming_a_module_is_refused(capsys, tmp_path, evil_module):
    small_dataset("evilmod:Evil-v0").save(tmp_path / "evil.h5")
    code, _, err = run(capsys, "offline", "--preset", "test", "--dataset", tmp_path / "evil.h5",
                       "--out", tmp_path / "o")
    assert_one_line_error(code, err, "evilmod", "--env")
    code, _, err = run(capsys, "dataset", "export", tmp_path / "evil.h5", "--id", "x/evil-v0",
                       "--root", tmp_path / "minari")
    assert code in (0, 2) and "Traceback" not in err  # exported without its env, or refused: no import


def test_checkpoint_naming_a_module_is_refused(capsys, tmp_path, evil_module):
    checkpoint = tmp_path / "run" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "meta.json").write_text(json.dumps({"config": TEST.replace(env="evilmod:Evil-v0").to_dict()}))
    (checkpoint / "state.safetensors").write_bytes(b"")
    code, _, err = run(capsys, "evaluate", tmp_path / "run")
    assert_one_line_error(code, err, "evilmod")
    code, _, err = run(capsys, "collect", "--checkpoint", tmp_path / "run", "--episodes", "2",
                       "--out", tmp_path / "d.h5")
    assert_one_line_error(code, err, "evilmod")
    code, _, err = run(capsys, "collect", "--tier", "random", "--checkpoint", tmp_path / "run", "--episodes", "2",
                       "--out", tmp_path / "d.h5")
    assert_one_line_error(code, err, "evilmod")


# ---------------------------------------------------------------------------------------
# Logs survive a torn last line; resume refuses a damaged checkpoint with one line
# ---------------------------------------------------------------------------------------
def test_resume_drops_a_torn_last_line(tmp_path):
    run_dir = tmp_path / "r"
    log = RunLog(run_dir, tensorboard=False)
    for step in (100, 200):
        log.log_eval({"step": step, "episode": step // 20, "return_mean": 1.0})
        log.log_metrics({"step": step, "alpha": 0.5})
    log.close()
    with (run_dir / "evaluations.csv").open("a") as f:
        f.write("300,15,2")  # the process died mid-append
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 300, "al')
    assert [r["step"] for r in read_evaluations(run_dir)] == [100, 200]
    assert [r["step"] for r in read_metrics(run_dir)] == [100, 200]
    log = RunLog(run_dir, tensorboard=False, resume_step=200)
    log.log_eval({"step": 300, "episode": 15, "return_mean": 3.0})
    log.log_metrics({"step": 300, "alpha": 0.4})
    log.close()
    assert [r["step"] for r in read_evaluations(run_dir)] == [100, 200, 300]
    assert [r["step"] for r in read_metrics(run_dir)] == [100, 200, 300]


def test_train_resumes_over_torn_logs(capsys, tmp_path, trained):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    with (out / "seed-0" / "evaluations.csv").open("a") as f:
        f.write("999,1,")
    with (out / "seed-0" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9')
    code, _, err = run(capsys, "train", "--preset", "test", "--total-steps", "400", "--out", out, "--resume")
    assert code == 0, err
    steps = [r["step"] for r in read_evaluations(out / "seed-0")]
    assert steps == sorted(steps) and steps[-1] == 400


@pytest.mark.parametrize("damage", [
    {"counters": None}, {"counters": {"step": "x"}}, {"replay_rng": {"bit_generator": "seed"}},
    {"accumulated": {"metrics": {"sums": [1.0], "count": 1}, "train_returns": []}}, {"seed": -1},
    {"pending_action": "left"}, {"env_rng": [1, 2]}, {"config": {"batch_size": "many"}},
])
def test_crafted_meta_on_resume_is_one_line(capsys, tmp_path, trained, damage):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    meta_path = out / "seed-0" / "checkpoint" / "meta.json"
    meta = json.loads(meta_path.read_text())
    if "config" in damage:
        meta["config"].update(damage["config"])
    else:
        meta.update(damage)
    meta_path.write_text(json.dumps(meta))
    code, _, err = run(capsys, "train", "--preset", "test", "--total-steps", "400", "--out", out, "--resume")
    assert_one_line_error(code, err, "corrupt checkpoint")


def test_a_run_holding_only_checkpoint_old_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "run" / "seed-0" / "checkpoint.old").mkdir(parents=True)
    code, _, err = run(capsys, *TRAIN, "--out", tmp_path / "run")
    assert_one_line_error(code, err, "already holds a run", "--resume")


# ---------------------------------------------------------------------------------------
# Ranges and outputs checked before work starts
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags,fragment", [
    (["--max-episode-steps", str(2**40)], "max_episode_steps must be <="),
    (["--seed", "-1"], "seeds must lie in"),
    (["--seed", str(2**40)], "seeds must lie in"),
    (["--buffer-size", str(2**30), "--hidden-sizes", "100000", "100000"], "GiB"),
    (["--eval-episodes", str(10**7)], "eval_episodes must be <="),
])
def test_runs_that_could_not_finish_are_refused_up_front(capsys, tmp_path, flags, fragment):
    code, _, err = run(capsys, *TRAIN, *flags, "--out", tmp_path / "r")
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "r").exists()


def test_ray_backend_without_ray_refuses_before_writing(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, _, err = run(capsys, "sweep", "online", "--preset", "test", "--backend", "ray", "--out", tmp_path / "s")
    assert_one_line_error(code, err, "pip install")
    assert not (tmp_path / "s").exists()


def test_study_with_ray_backend_without_ray_refuses_before_writing(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run(capsys, "study", "--quick", "--backend", "ray", "--out", tmp_path / "s")
    assert_one_line_error(code, err, "pip install")
    assert not (tmp_path / "s").exists()


def test_a_study_directory_in_use_is_refused(capsys, tmp_path):
    from saclab.launch.plan import plan_study
    from saclab.launch.study import write_plan

    write_plan(plan_study("default", quick=True), tmp_path / "s")
    child = hold_lock_in_child(tmp_path / "s")  # as if another `saclab study` ran there
    try:
        for command in (["report", tmp_path / "s"], ["study", "--quick", "--out", tmp_path / "s"]):
            code, _, err = run(capsys, *command)
            assert_one_line_error(code, err, "in use", str(child.pid))
    finally:
        child.kill()
        child.wait()


def test_local_ray_instance_binds_to_localhost(monkeypatch):
    from saclab.launch import ray_backend

    calls = {}

    class Stop(Exception):
        pass

    def init(**options):
        calls.update(options)
        raise Stop

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init)
    monkeypatch.setattr(ray_backend, "import_ray", lambda: fake)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(SaclabError):
        ray_backend.run_ray([object()])
    assert calls["_node_ip_address"] == "127.0.0.1" and calls["address"] is None
    calls.clear()
    with pytest.raises(SaclabError):
        ray_backend.run_ray([object()], address="ray://head:10001")
    assert "_node_ip_address" not in calls


# ---------------------------------------------------------------------------------------
# No worker outlives a killed sweep
# ---------------------------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_worker_outlives_a_killed_sweep(tmp_path):
    command = [sys.executable, "-c", "import sys; from saclab.cli.main import main; sys.exit(main())",
               "sweep", "online", "--preset", "test", "--total-steps", "2000", "--seeds", "2", "--workers", "2",
               "--out", str(tmp_path / "s")]
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        claimed = [tmp_path / "s" / "base" / f"seed-{s}" / ".saclab.pid" for s in (0, 1)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(p.exists() for p in claimed):  # both runs are training
            time.sleep(0.2)
        workers = children_of(sweep.pid)
        assert {holder_pid(p.parent) for p in claimed} <= set(workers), "the runs are not in the pool's workers"
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers)
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
