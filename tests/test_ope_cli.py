"""`saclab ope` end to end: a trained run and its export give one estimate, --select ranks hand-made policies
of known value in their order, and every bad input is one line with exit status 2."""

import json
import re

import numpy as np
import pytest
from safetensors.numpy import save_file
from test_fqe import chain_dataset

from saclab.cli.main import main
from saclab.config import preset
from saclab.data.collect import collect
from saclab.inference import FORMAT, FORMAT_VERSION, SPEC_FILE, WEIGHTS_FILE
from saclab.runs.offline import train_offline

FAST = ["--updates", "300"]


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """A random CartPole dataset and a tiny CQL run trained on it (preset test)."""
    root = tmp_path_factory.mktemp("ope")
    data = collect("random", "CartPole-v1", steps=400, seed=0, num_envs=2)
    data.save(root / "random.h5")
    config = preset("test").replace(epochs=1, cql_weight=1.0, offline_eval_episodes=2)
    train_offline(config, data, seed=0, run_dir=root / "cql" / "seed-0", progress=False, tensorboard=False)
    return root


def exported_constant(directory, action: int, obs_dim: int = 2, num_actions: int = 2):
    """An exported policy with no hidden layer whose logits favour ``action`` everywhere."""
    directory.mkdir(parents=True)
    bias = np.zeros(num_actions, np.float32)
    bias[action] = 1.0
    save_file({"layers.0.weight": np.zeros((obs_dim, num_actions), np.float32), "layers.0.bias": bias},
              str(directory / WEIGHTS_FILE))
    spec = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": "mlp", "activation": "relu",
            "obs_dim": obs_dim, "num_actions": num_actions, "hidden_sizes": [], "env_id": None}
    (directory / SPEC_FILE).write_text(json.dumps(spec))
    return directory


def estimate(text: str) -> float:
    return float(re.search(r"\(greedy\): (-?[\d.]+)", text).group(1))


def test_ope_of_a_run_and_of_its_export_agree(cartpole, tmp_path, capsys):
    run, dataset = cartpole / "cql" / "seed-0", str(cartpole / "random.h5")
    assert main(["ope", str(run), "--dataset", dataset, *FAST]) == 0
    out = capsys.readouterr().out
    assert "95% CI [" in out and "behaviour policy" in out
    assert main(["export", str(run), "--out", str(tmp_path / "policy")]) == 0
    capsys.readouterr()
    assert main(["ope", str(tmp_path / "policy"), "--dataset", dataset, *FAST]) == 0
    assert estimate(capsys.readouterr().out) == estimate(out)  # the same greedy actions, the same FQE


def test_select_ranks_policies_of_known_value_best_first(tmp_path, capsys):
    chain_dataset().save(tmp_path / "chain.h5")
    candidates = tmp_path / "candidates"
    exported_constant(candidates / "always-0", 0)  # V(s0) = 0
    exported_constant(candidates / "always-1", 1)  # V(s0) = gamma
    assert main(["ope", str(candidates), "--select", "--dataset", str(tmp_path / "chain.h5"), "--gamma", "0.9",
                 "--updates", "1500"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if re.match(r"\s+\d+\s", line)]
    assert [leaf(r[1]) for r in rows] == ["always-1", "always-0"]
    assert float(rows[0][2]) == pytest.approx(0.9, abs=0.1) and float(rows[1][2]) == pytest.approx(0.0, abs=0.1)


def leaf(text: str) -> str:
    return text.rstrip("/").split("/")[-1]


def test_bad_inputs_are_one_line_and_exit_2(cartpole, tmp_path, capsys):
    run, dataset = str(cartpole / "cql" / "seed-0"), str(cartpole / "random.h5")
    chain_dataset().save(tmp_path / "chain.h5")
    (tmp_path / "empty").mkdir()
    for action in (0, 1):
        exported_constant(tmp_path / "two" / f"always-{action}", action, obs_dim=4)
    cases = {
        "--dataset FILE is required": ["ope", run],
        "not found": ["ope", str(tmp_path / "nope"), "--dataset", dataset],
        "no run, checkpoint or exported policy": ["ope", str(tmp_path / "empty"), "--dataset", dataset],
        "obs_dim=4": ["ope", run, "--dataset", str(tmp_path / "chain.h5")],
        "pass --select": ["ope", str(tmp_path / "two"), "--dataset", dataset],
        "--gamma": ["ope", run, "--dataset", dataset, "--gamma", "1.5"],
        str(tmp_path / "missing.h5"): ["ope", run, "--dataset", str(tmp_path / "missing.h5")],
    }
    for expected, argv in cases.items():
        assert main([*argv, *FAST]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("saclab ope: error:") and "\n" not in err and expected in err, (argv, err)
