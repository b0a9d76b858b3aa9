"""Several offline seeds in one process with jax.vmap: the same runs as separate train_offline calls."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from saclab.cli.main import main
from saclab.config import preset
from saclab.core.agent import Learner, init_state
from saclab.data.collect import collect
from saclab.data.dataset import Dataset
from saclab.envs.make import env_spec
from saclab.errors import SaclabError
from saclab.runs.checkpoint import pytree_to_arrays
from saclab.runs.offline import train_offline, train_offline_vmapped
from saclab.runs.runlog import read_metrics

CONFIG = preset("test")  # 2 epochs, batch 64, 4 evaluation episodes of at most 100 steps
SEEDS = (0, 1)
RETURN_KEYS = ("step", "epoch", "return_mean", "return_std", "return_min", "return_max", "mc_return", "q_bound")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return collect("random", env_id="CartPole-v1", steps=2000, seed=0, progress=False)


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """2 seeds x 2 epochs, vmapped in one call and as two separate train_offline runs."""
    root = tmp_path_factory.mktemp("vmap")
    vmapped = train_offline_vmapped(CONFIG, dataset, SEEDS, root / "vmap", progress=False, tensorboard=False)
    separate = [train_offline(CONFIG, dataset, s, root / "separate" / f"seed-{s}", progress=False,
                              tensorboard=False) for s in SEEDS]
    return vmapped, separate


def files(run_dir):
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def test_vmapped_initial_states_are_the_separate_ones_bit_for_bit():
    learner = Learner.from_config(CONFIG, env_spec("CartPole-v1"))
    stacked = jax.vmap(lambda k: init_state(learner, k))(jnp.stack([jax.random.PRNGKey(s) for s in SEEDS]))
    for i, s in enumerate(SEEDS):
        one = pytree_to_arrays(jax.tree_util.tree_map(lambda x, i=i: x[i], stacked))
        for k, v in pytree_to_arrays(init_state(learner, jax.random.PRNGKey(s))).items():
            np.testing.assert_array_equal(one[k], v, err_msg=k)


def test_vmapped_seeds_give_the_separate_runs(runs):
    vmapped, separate = runs
    assert [r.seed for r in vmapped] == list(SEEDS)
    for v, s in zip(vmapped, separate, strict=True):
        assert v.dir.name == s.dir.name == f"seed-{s.seed}"
        # Batched matmuls round differently in the last bits (not bit-identical on CPU): a tolerance.
        a, b = pytree_to_arrays(v.state), pytree_to_arrays(s.state)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)
        assert len(v.evaluations) == len(s.evaluations) == CONFIG.epochs
        for rv, rs in zip(v.evaluations, s.evaluations, strict=True):
            assert rv.keys() == rs.keys()
            assert {k: rv[k] for k in RETURN_KEYS} == {k: rs[k] for k in RETURN_KEYS}
            assert rv["q_data"] == pytest.approx(rs["q_data"], rel=1e-4, abs=1e-5)
            assert rv["q_greedy"] == pytest.approx(rs["q_greedy"], rel=1e-4, abs=1e-5)
        mv, ms = read_metrics(v.dir), read_metrics(s.dir)
        assert [m.keys() for m in mv] == [m.keys() for m in ms]
        for x, y in zip(mv, ms, strict=True):
            assert x == pytest.approx(y, rel=1e-4, abs=1e-5)
        assert files(v.dir) == files(s.dir)
        assert json.loads((v.dir / "config.json").read_text()) == json.loads((s.dir / "config.json").read_text())
        meta_v = json.loads((v.dir / "checkpoint" / "meta.json").read_text())
        meta_s = json.loads((s.dir / "checkpoint" / "meta.json").read_text())
        for meta in (meta_v, meta_s):
            meta["counters"].pop("wall_time")
        assert meta_v == meta_s  # the same permutation generator state: train_offline can resume it
        assert v.summary["vmap_seeds"] == len(SEEDS)
        assert {k: v.summary[k] for k in ("final_return", "best_return", "epochs", "updates", "transitions")} == \
               {k: s.summary[k] for k in ("final_return", "best_return", "epochs", "updates", "transitions")}


def test_train_offline_continues_a_vmapped_run_and_finished_seeds_are_kept(runs, dataset):
    vmapped, _ = runs
    again = train_offline_vmapped(CONFIG, dataset, SEEDS, vmapped[0].dir.parent, resume=True)
    assert [r.summary for r in again] == [r.summary for r in vmapped]  # finished: returned as they are
    (vmapped[1].dir / "result.json").unlink()
    longer = train_offline(CONFIG.replace(epochs=3), dataset, SEEDS[1], vmapped[1].dir, resume=True,
                           progress=False, tensorboard=False)
    assert [r["epoch"] for r in longer.evaluations] == [1, 2, 3]
    assert longer.evaluations[:2] == vmapped[1].evaluations


def test_divergence_names_the_seed_and_keeps_no_checkpoint(dataset, tmp_path):
    huge = Dataset(dataset.observations, dataset.actions, np.full(len(dataset), 3e38, np.float32),
                   dataset.next_observations, dataset.terminations, dataset.truncations, dataset.episode_starts,
                   metadata=dict(dataset.metadata))
    with pytest.raises(SaclabError, match=r"seed 0: training diverged: non-finite .* epoch 1 .*\(1 more seeds"):
        train_offline_vmapped(CONFIG, huge, SEEDS, tmp_path, progress=False, tensorboard=False)
    assert not any((tmp_path / f"seed-{s}" / "checkpoint").exists() for s in SEEDS)
    with pytest.raises(SaclabError, match="distinct"):
        train_offline_vmapped(CONFIG, dataset, [3, 3], tmp_path)


def test_cli_vmap(dataset, tmp_path, capsys):
    data = str(dataset.save(tmp_path / "d.h5"))
    out = tmp_path / "runs"
    argv = ["offline", "--dataset", data, "--preset", "test", "--epochs", "1", "--seeds", "2", "--out", str(out)]
    assert main([*argv, "--vmap"]) == 0
    for s in SEEDS:
        result = json.loads((out / f"seed-{s}" / "result.json").read_text())
        assert result["epochs"] == 1 and result["vmap_seeds"] == 2
    assert "done" in capsys.readouterr().err
    assert main([*argv, "--vmap", "--resume"]) == 0  # finished: nothing to do
    assert main([*argv, "--vmap", "--workers", "2", "--out", str(tmp_path / "other")]) == 2
    assert "--workers is for the process pool" in capsys.readouterr().err
