"""Datasets: the HDF5 format, validation, Monte Carlo returns, Minari round trip."""

import h5py
import numpy as np
import pytest

from saclab.data.dataset import ARRAYS, Dataset
from saclab.errors import SaclabError


def make_dataset(obs_dim: int = 4, seed: int = 0) -> Dataset:
    """12 transitions in contiguous episodes of lengths 5, 4, 3 (terminated, truncated, terminated)."""
    rng = np.random.default_rng(seed)
    n, lengths = 12, [5, 4, 3]
    obs, nxt, starts, term, trunc = [], [], [], [], []
    for k, length in enumerate(lengths):
        states = rng.normal(size=(length + 1, obs_dim)).astype(np.float32)
        obs.append(states[:-1])
        nxt.append(states[1:])
        starts += [True] + [False] * (length - 1)
        term += [False] * (length - 1) + [k != 1]
        trunc += [False] * (length - 1) + [k == 1]
    meta = {"env_id": "CartPole-v1", "obs_dim": obs_dim, "num_actions": 2, "source": "test", "seed": seed,
            "nested": {"a": [1, 2], "b": None}}
    return Dataset(np.concatenate(obs), rng.integers(2, size=n), rng.normal(size=n).astype(np.float32),
                   np.concatenate(nxt), term, trunc, starts, metadata=meta)


def test_save_load_round_trip_is_identical(tmp_path):
    d = make_dataset()
    d.save(tmp_path / "d.h5")
    e = Dataset.load(tmp_path / "d.h5")
    for name in ARRAYS:
        a, b = getattr(d, name), getattr(e, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert e.metadata == d.metadata
    assert e.path == tmp_path / "d.h5"
    assert e.fingerprint() == d.fingerprint()
    assert not (tmp_path / "d.h5.tmp").exists()


def test_fingerprint_changes_with_the_data():
    d = make_dataset()
    e = make_dataset()
    e.rewards[3] += 1.0
    assert d.fingerprint() != e.fingerprint()


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(SaclabError, match="not found"):
        Dataset.load(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(SaclabError, match="corrupt"):
        Dataset.load(tmp_path / "junk.h5")
    make_dataset().save(tmp_path / "cut.h5")
    data = (tmp_path / "cut.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(SaclabError):
        Dataset.load(tmp_path / "cut.h5")


def test_hdf5_of_the_wrong_layout(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("foo", data=np.zeros(3))
    with pytest.raises(SaclabError, match="not a saclab dataset"):
        Dataset.load(tmp_path / "other.h5")
    d = make_dataset()
    d.save(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "missing.h5", "a") as f:
        del f["rewards"]
    with pytest.raises(SaclabError, match="missing rewards"):
        Dataset.load(tmp_path / "missing.h5")
    d.save(tmp_path / "shape.h5")
    with h5py.File(tmp_path / "shape.h5", "a") as f:
        del f["actions"]
        f.create_dataset("actions", data=np.zeros((12, 2), np.int64))
    with pytest.raises(SaclabError, match="actions"):
        Dataset.load(tmp_path / "shape.h5")
    d.save(tmp_path / "dtype.h5")
    with h5py.File(tmp_path / "dtype.h5", "a") as f:
        del f["terminations"]
        f.create_dataset("terminations", data=np.zeros(12, np.float32))
    with pytest.raises(SaclabError, match="terminations must be boolean"):
        Dataset.load(tmp_path / "dtype.h5")


def test_empty_dataset_is_refused(tmp_path):
    d = make_dataset()
    with pytest.raises(SaclabError, match="empty"):
        Dataset(*(getattr(d, name)[:0] for name in ARRAYS))
    d.save(tmp_path / "empty.h5")
    with h5py.File(tmp_path / "empty.h5", "a") as f:
        for name in ARRAYS:
            data = f[name][:0]
            del f[name]
            f.create_dataset(name, data=data)
    with pytest.raises(SaclabError, match="empty"):
        Dataset.load(tmp_path / "empty.h5")


def test_nan_rewards_and_bad_actions_are_refused(tmp_path):
    d = make_dataset()
    d.save(tmp_path / "nan.h5")
    with h5py.File(tmp_path / "nan.h5", "a") as f:
        f["rewards"][4] = np.nan
    with pytest.raises(SaclabError, match=r"rewards contains NaN .*transition 4"):
        Dataset.load(tmp_path / "nan.h5")
    obs = d.observations.copy()
    obs[2, 1] = np.inf
    with pytest.raises(SaclabError, match="observations contains NaN"):
        Dataset(obs, d.actions, d.rewards, d.next_observations, d.terminations, d.truncations, d.episode_starts)
    actions = d.actions.copy()
    actions[0] = 5
    with pytest.raises(SaclabError, match="actions must lie in"):
        Dataset(d.observations, actions, d.rewards, d.next_observations, d.terminations, d.truncations,
                d.episode_starts, metadata={"num_actions": 2})


def test_wrong_env_is_refused():
    d = make_dataset()
    d.check_env(4, 2, "CartPole-v1")
    with pytest.raises(SaclabError, match="obs_dim=4, 2 actions; Acrobot-v1 has obs_dim=6, 3 actions"):
        d.check_env(6, 3, "Acrobot-v1")


def test_discounted_returns_by_hand():
    # Two episodes: rewards 1, 2, 3 (terminated), then 4, 5 (truncated), gamma 0.5.
    obs = np.zeros((5, 2), np.float32)
    d = Dataset(obs, [0, 1, 0, 1, 0], [1, 2, 3, 4, 5], obs, [False, False, True, False, False],
                [False, False, False, False, True], [True, False, False, True, False])
    # G2 = 3; G1 = 2 + 0.5*3 = 3.5; G0 = 1 + 0.5*3.5 = 2.75; G4 = 5; G3 = 4 + 0.5*5 = 6.5
    np.testing.assert_allclose(d.discounted_returns(0.5), [2.75, 3.5, 3.0, 6.5, 5.0])
    np.testing.assert_allclose(d.episode_returns(), [6.0, 9.0])
    info = d.info()
    assert info["episodes"] == 2 and info["terminations"] == 1 and info["truncations"] == 1


def test_minari_round_trip(tmp_path):
    pytest.importorskip("minari")
    from saclab.data.minari_io import export_minari, import_minari

    d = make_dataset()
    path = export_minari(d, "saclab/test-roundtrip-v0", root=tmp_path / "minari")
    assert (path / "data" / "metadata.json").is_file()
    for source in ("saclab/test-roundtrip-v0", path):
        e = import_minari(source, root=tmp_path / "minari")
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(d, name), getattr(e, name), err_msg=name)
            assert getattr(d, name).dtype == getattr(e, name).dtype, name
        assert {k: e.metadata[k] for k in d.metadata} == d.metadata
        assert e.metadata["minari_dataset_id"] == "saclab/test-roundtrip-v0"
    with pytest.raises(SaclabError, match="already exists"):
        export_minari(d, "saclab/test-roundtrip-v0", root=tmp_path / "minari")
    with pytest.raises(SaclabError, match="not found"):
        import_minari("saclab/absent-v0", root=tmp_path / "minari")
    with pytest.raises(SaclabError, match="malformed"):
        export_minari(d, "no version", root=tmp_path / "minari")


def test_minari_episodes_keep_terminations_and_truncations_apart(tmp_path):
    minari = pytest.importorskip("minari")
    from saclab.data.minari_io import export_minari

    path = export_minari(make_dataset(), "saclab/test-episodes-v0", root=tmp_path)
    episodes = list(minari.MinariDataset(path / "data").iterate_episodes())
    assert [len(e.rewards) for e in episodes] == [5, 4, 3]
    assert [len(e.observations) for e in episodes] == [6, 5, 4]
    assert [bool(e.terminations[-1]) for e in episodes] == [True, False, True]
    assert [bool(e.truncations[-1]) for e in episodes] == [False, True, False]
