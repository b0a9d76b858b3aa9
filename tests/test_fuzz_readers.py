"""Every reader of saclab's files, fed malformed files: it returns checked data or raises a
one-line SaclabError, never another exception (docs/reliability.md)."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saclab.analysis.runfiles import curve_axis, read_study, sweep_groups
from saclab.config import TEST
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.launch.sweep import load_experiment
from saclab.runs.checkpoint import check_resume_meta, find_checkpoint, load_meta
from saclab.runs.runlog import read_evaluations, read_metrics, read_result, read_run_config
from saclab.runs.schema import config_from_json

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
file_bytes = st.binary(max_size=300) | st.text(max_size=300).map(str.encode)


def fresh(tmp_path: Path, name: str) -> Path:
    """A new empty directory per example (hypothesis reuses the test's tmp_path)."""
    directory = tmp_path / name
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        if child.is_file():
            child.unlink()
    return directory


def only_saclab_errors(read, *args):
    try:
        return read(*args)
    except SaclabError as e:
        assert "\n" not in str(e)
        return None


# A valid online evaluations.csv and metrics.jsonl, cut at any byte: the torn tail is dropped.
EVALUATIONS = "step,episode,return_mean,train_return\r\n100,5,20.5,\r\n200,10,31.0,25.5\r\n"
METRICS = '{"step": 100, "alpha": 0.9}\n{"step": 200, "alpha": 0.8}\n'


@FUZZ
@given(cut=st.integers(0, len(EVALUATIONS)), junk=file_bytes)
def test_evaluations_csv(tmp_path, cut, junk):
    run = fresh(tmp_path, "run")
    (run / "evaluations.csv").write_bytes(EVALUATIONS.encode()[:cut])
    rows = read_evaluations(run)
    assert [r["step"] for r in rows] == [100, 200][: max(0, EVALUATIONS[:cut].count("\n") - 1)]
    (run / "evaluations.csv").write_bytes(junk)
    only_saclab_errors(read_evaluations, run)


@FUZZ
@given(cut=st.integers(0, len(METRICS)), junk=file_bytes)
def test_metrics_jsonl(tmp_path, cut, junk):
    run = fresh(tmp_path, "run")
    (run / "metrics.jsonl").write_bytes(METRICS.encode()[:cut])
    assert [r["step"] for r in read_metrics(run)] == [100, 200][: METRICS[:cut].count("\n")]
    (run / "metrics.jsonl").write_bytes(junk)
    only_saclab_errors(read_metrics, run)


@FUZZ
@given(value=json_values, junk=file_bytes)
def test_result_and_config_json(tmp_path, value, junk):
    run = fresh(tmp_path, "run")
    for content in (json.dumps(value).encode(), junk):
        (run / "result.json").write_bytes(content)
        (run / "config.json").write_bytes(content)
        result = only_saclab_errors(read_result, run)
        if result is not None:
            float(result["final_return"]), float(result["best_return"])
        only_saclab_errors(read_run_config, run)
        only_saclab_errors(curve_axis, run)


@FUZZ
@given(value=json_values, labels=st.lists(st.text(max_size=6), max_size=3), seeds=json_values)
def test_sweep_json(tmp_path, value, labels, seeds):
    out = fresh(tmp_path, "sweep")
    for content in (value, {"labels": labels, "seeds": seeds, "kind": "online", "grid": {}, "base_config": value}):
        (out / "sweep.json").write_text(json.dumps(content))
        only_saclab_errors(sweep_groups, out)
        only_saclab_errors(load_experiment, out)


@FUZZ
@given(value=json_values, groups=json_values)
def test_study_json(tmp_path, value, groups):
    out = fresh(tmp_path, "study")
    for content in (value, {"groups": groups, "datasets": value, "online": {}}):
        (out / "study.json").write_text(json.dumps(content))
        study = only_saclab_errors(read_study, out)
        if study is not None:
            assert all(str(r).startswith(str(out)) for runs in study.groups.values() for r in runs)


@FUZZ
@given(value=json_values, field=st.sampled_from(["quick", "online", "tier_seeds", "sweep_weights", "tier_epochs",
                                                 "ablation_seeds", "preset"]))
def test_study_plan(tmp_path, value, field):
    from saclab.launch.plan import plan_study
    from saclab.launch.study import load_plan

    out = fresh(tmp_path, "plan")
    for content in (value, {**plan_study("notebook", quick=True).to_dict(), field: value}):
        (out / "study.json").write_text(json.dumps(content))
        only_saclab_errors(load_plan, out)


def valid_meta() -> dict:
    state = np.random.default_rng(0).bit_generator.state
    return {"kind": "offline", "seed": 0, "config": TEST.to_dict(), "rng": state,
            "counters": {"epoch": 1, "updates": 10, "wall_time": 1.0}, "dataset": {"sha256": "ab"}}


@FUZZ
@given(key=st.sampled_from(sorted(valid_meta())), value=json_values, config_key=st.sampled_from(sorted(TEST.to_dict())))
def test_checkpoint_meta(tmp_path, key, value, config_key):
    checkpoint = fresh(tmp_path, "checkpoint")
    (checkpoint / "state.safetensors").write_bytes(b"")
    for meta in ({**valid_meta(), key: value}, {**valid_meta(), "config": {**TEST.to_dict(), config_key: value}}):
        (checkpoint / "meta.json").write_text(json.dumps(meta))
        loaded = only_saclab_errors(load_meta, checkpoint)
        if loaded is not None:
            only_saclab_errors(check_resume_meta, loaded, "offline", checkpoint)


@FUZZ
@given(value=json_values)
def test_config_from_json(value):
    only_saclab_errors(config_from_json, value, "file")
    only_saclab_errors(config_from_json, {"env": "CartPole-v1", "batch_size": value}, "file")


@FUZZ
@given(junk=file_bytes, attr=json_values, name=st.sampled_from(["actions", "rewards", "episode_starts"]))
def test_dataset_file(tmp_path, junk, attr, name):
    directory = fresh(tmp_path, "data")
    (directory / "junk.h5").write_bytes(junk)
    only_saclab_errors(Dataset.load, directory / "junk.h5")
    n = 8
    path = directory / "d.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "saclab-dataset"
        f.attrs["env_id"] = json.dumps(attr)
        f.attrs["num_actions"] = 2
        for array, value in (("observations", np.zeros((n, 4))), ("next_observations", np.zeros((n, 4))),
                             ("actions", np.zeros(n, np.int64)), ("rewards", np.ones(n, np.float32)),
                             ("terminations", np.zeros(n, bool)), ("truncations", np.zeros(n, bool)),
                             ("episode_starts", np.eye(1, n, dtype=bool)[0])):
            f[array] = np.full(3, np.nan) if array == name and isinstance(attr, list) else value
    only_saclab_errors(Dataset.load, path)


@pytest.mark.parametrize("broken", ["no state", "state is a directory"])
def test_incomplete_checkpoint_is_corrupt_not_missing(tmp_path, broken):
    checkpoint = tmp_path / "run" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "meta.json").write_text(json.dumps(valid_meta()))
    if broken == "state is a directory":
        (checkpoint / "state.safetensors").mkdir()
    with pytest.raises(SaclabError, match="corrupt checkpoint"):
        find_checkpoint(tmp_path / "run")
