"""Exported policies: the NumPy loader gives the JAX policy's greedy actions, imports no JAX,
refuses damaged exports with one line, and `saclab evaluate` runs one in a simulator."""

import json
import subprocess
import sys

import numpy as np
import pytest

from saclab.cli.main import main
from saclab.config import preset
from saclab.data.collect import collect
from saclab.errors import SaclabError
from saclab.inference import load
from saclab.runs.offline import train_offline
from saclab.runs.policy import Policy


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    data = collect("random", "CartPole-v1", steps=300, seed=0, num_envs=2)
    out = tmp_path_factory.mktemp("runs") / "cql"
    config = preset("test").replace(epochs=1, cql_weight=1.0, offline_eval_episodes=2)
    train_offline(config, data, seed=0, run_dir=out, progress=False, tensorboard=False)
    return out


def test_exported_policy_equals_the_jax_policy(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "policy")]) == 0
    assert "saclab.inference" in capsys.readouterr().out
    exported, jax_policy = load(tmp_path / "policy"), Policy.load(run_dir)
    obs = np.random.default_rng(0).normal(scale=2.0, size=(10_000, 4)).astype(np.float32)
    np.testing.assert_array_equal(exported(obs), jax_policy.act(obs))
    logits = jax_policy.learner.actor.apply({"params": jax_policy.state.actor_params}, obs[:100])
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(exported.probabilities(obs[:100]),
                               probabilities / probabilities.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert isinstance(exported(obs[0]), int) and exported.probabilities(obs[0]).shape == (2,)
    spec = json.loads((tmp_path / "policy" / "policy.json").read_text())
    assert spec["obs_dim"] == 4 and spec["num_actions"] == 2 and spec["hidden_sizes"] == [64, 64]
    assert spec["activation"] == "relu" and spec["env_id"] == "CartPole-v1"
    # evaluate accepts the exported directory, in a simulator named by --env
    assert main(["evaluate", str(tmp_path / "policy"), "--env", "CartPole-v1", "--episodes", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    for argv, message in ((["evaluate", str(tmp_path / "policy")], "pass --env"),
                          (["evaluate", str(tmp_path / "policy"), "--env", "Acrobot-v1"], "obs_dim"),
                          (["export", str(run_dir), "--out", str(tmp_path / "policy")], "not empty"),
                          (["export", str(tmp_path), "--out", str(tmp_path / "p2")], "checkpoint")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert main(["export", str(run_dir), "--out", str(tmp_path / "policy"), "--force"]) == 0


def test_inference_imports_no_jax(run_dir, tmp_path):
    main(["export", str(run_dir), "--out", str(tmp_path / "p")])
    code = ("import sys, numpy as np; from saclab.inference import load; "
            f"p = load({str(tmp_path / 'p')!r}); p(np.zeros((3, 4))); "
            "bad = [m for m in ('jax', 'flax', 'optax', 'gymnasium') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_damaged_exports_are_one_line(run_dir, tmp_path):
    main(["export", str(run_dir), "--out", str(tmp_path / "p")])
    spec_file = tmp_path / "p" / "policy.json"
    spec = json.loads(spec_file.read_text())
    for change, message in (({"hidden_sizes": [64]}, "layer 1"), ({"format": "x"}, "not a saclab policy"),
                            ({"activation": "tanh"}, "activation"), ({"obs_dim": 0}, "positive integers")):
        spec_file.write_text(json.dumps({**spec, **change}))
        with pytest.raises(SaclabError, match=message):
            load(tmp_path / "p")
    spec_file.write_text(json.dumps(spec))
    (tmp_path / "p" / "actor.safetensors").write_bytes(b"junk")
    with pytest.raises(SaclabError, match="unreadable"):
        load(tmp_path / "p")
    with pytest.raises(SaclabError, match="not an exported policy"):
        load(tmp_path)


def test_onnx_export_gives_the_jax_policy_s_logits_and_actions(run_dir, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    assert main(["export", str(run_dir), "--out", str(tmp_path / "policy"), "--onnx"]) == 0
    assert json.loads(capsys.readouterr().out)["onnx"].endswith("actor.onnx")
    model = onnx.load(str(tmp_path / "policy" / "actor.onnx"))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["observations"]
    assert [o.name for o in model.graph.output] == ["logits", "action"]
    obs = np.random.default_rng(3).normal(scale=2.0, size=(10_000, 4)).astype(np.float32)
    logits, actions = ReferenceEvaluator(model).run(None, {"observations": obs})
    jax_policy = Policy.load(run_dir)
    np.testing.assert_array_equal(actions, jax_policy.act(obs))
    np.testing.assert_allclose(logits, load(tmp_path / "policy").logits(obs), rtol=1e-5, atol=1e-5)


def test_onnx_export_without_the_package_is_one_line_and_writes_nothing(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(SaclabError, match=r"pip install 'saclab\[onnx\]'"):
        from saclab.runs.export import export_policy

        export_policy(run_dir, tmp_path / "policy", onnx=True)
    assert not (tmp_path / "policy").exists()
