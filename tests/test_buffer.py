import numpy as np
import pytest

from saclab.data.buffer import ReplayBuffer, SumTree
from saclab.errors import SaclabError


def fill(buffer, n, start=0):
    for i in range(start, start + n):
        buffer.add(np.full(3, i, np.float32), i % 2, float(i), np.full(3, i + 1, np.float32), i % 7 == 6, i % 5 == 4)


def test_insert_and_gather():
    b = ReplayBuffer(obs_dim=3, capacity=10)
    fill(b, 4)
    assert len(b) == 4 and b.head == 4
    batch = b.gather(np.array([0, 3]))
    np.testing.assert_array_equal(batch.obs[:, 0], [0, 3])
    np.testing.assert_array_equal(batch.next_obs[:, 0], [1, 4])
    np.testing.assert_array_equal(batch.actions, [0, 1])
    np.testing.assert_array_equal(batch.rewards, [0.0, 3.0])
    assert batch.obs.dtype == np.float32 and batch.actions.dtype == np.int32
    np.testing.assert_array_equal(batch.weights, [1.0, 1.0])


def test_truncation_is_not_terminal_unless_asked():
    b = ReplayBuffer(obs_dim=3, capacity=10)
    fill(b, 6)  # transition 4 is truncated, none terminated
    assert b.gather(np.array([4])).terminated[0] == 0.0
    assert b.gather(np.array([4]), truncation_is_terminal=True).terminated[0] == 1.0


def test_wrap_around_keeps_the_newest():
    b = ReplayBuffer(obs_dim=3, capacity=5)
    fill(b, 12)
    assert len(b) == 5 and b.head == 2
    assert sorted(b.storage.observations[:, 0].tolist()) == [7, 8, 9, 10, 11]
    np.testing.assert_array_equal(b.transitions().observations[:, 0], [7, 8, 9, 10, 11])  # oldest first


def test_uniform_sampling_only_reads_stored_rows():
    b = ReplayBuffer(obs_dim=3, capacity=1000)
    fill(b, 10)
    rng = np.random.default_rng(0)
    idx, w = b.sample_indices(rng, 5000)
    assert idx.min() >= 0 and idx.max() <= 9
    counts = np.bincount(idx, minlength=10) / 5000
    np.testing.assert_allclose(counts, 0.1, atol=0.02)
    np.testing.assert_array_equal(w, 1.0)


def test_sampling_is_reproducible_from_the_seed():
    b = ReplayBuffer(obs_dim=3, capacity=100)
    fill(b, 50)
    a = b.sample_indices(np.random.default_rng(3), 32)[0]
    c = b.sample_indices(np.random.default_rng(3), 32)[0]
    np.testing.assert_array_equal(a, c)


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(SaclabError):
        ReplayBuffer(obs_dim=3, capacity=4).sample_indices(np.random.default_rng(0), 2)


def test_save_load_round_trip(tmp_path):
    b = ReplayBuffer(obs_dim=3, capacity=8)
    fill(b, 11)
    b.save(tmp_path / "b.safetensors")
    c = ReplayBuffer(obs_dim=3, capacity=8)
    c.load(tmp_path / "b.safetensors")
    assert (c.size, c.head) == (b.size, b.head)
    for saved, loaded in zip(b.storage, c.storage, strict=True):
        np.testing.assert_array_equal(loaded, saved)


def test_load_rejects_mismatch_and_corruption(tmp_path):
    b = ReplayBuffer(obs_dim=3, capacity=8)
    fill(b, 3)
    b.save(tmp_path / "b.safetensors")
    with pytest.raises(SaclabError, match="obs_dim"):
        ReplayBuffer(obs_dim=4, capacity=8).load(tmp_path / "b.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SaclabError, match="corrupt"):
        ReplayBuffer(obs_dim=3, capacity=8).load(tmp_path / "bad.safetensors")


def test_sum_tree_sums_and_finds():
    t = SumTree(5)
    t.set(np.arange(5), np.array([1.0, 2.0, 3.0, 4.0, 0.0]))
    assert t.total == pytest.approx(10.0)
    np.testing.assert_array_equal(t.find(np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])),
                                  [0, 0, 1, 1, 2, 2, 3, 3])
    t.set(np.array([0]), np.array([5.0]))
    assert t.total == pytest.approx(14.0)


def test_prioritised_sampling_frequencies_follow_priorities():
    b = ReplayBuffer(obs_dim=3, capacity=8, prioritized=True, priority_exponent=1.0, importance_exponent=1.0)
    fill(b, 4)
    b.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]) - 1e-6)
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    for _ in range(500):
        idx, w = b.sample_indices(rng, 40)
        counts += np.bincount(idx, minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.01)
    # importance weights (N P)^-1 / max: proportional to 1/priority, largest for the rarest
    idx, w = b.sample_indices(rng, 40)
    np.testing.assert_allclose(w, 1.0 / (np.array([1.0, 2.0, 3.0, 4.0])[idx]), rtol=1e-5)


def test_prioritised_new_transitions_get_max_priority():
    b = ReplayBuffer(obs_dim=3, capacity=8, prioritized=True, priority_exponent=1.0)
    fill(b, 2)
    b.update_priorities(np.array([0, 1]), np.array([5.0, 0.5]))
    fill(b, 1, start=2)
    assert b.tree.get(np.array([2]))[0] == pytest.approx(5.0, rel=1e-5)


def test_a_saved_buffer_with_a_wrong_shape_is_refused_in_one_line(tmp_path):
    import json

    from safetensors.numpy import load_file, save_file

    b = ReplayBuffer(obs_dim=3, capacity=10)
    fill(b, 6)
    b.save(tmp_path / "buffer.safetensors")
    tensors = load_file(str(tmp_path / "buffer.safetensors"))
    meta = {"capacity": 10, "head": 6, "size": 6, "obs_dim": 3, "prioritized": False, "max_priority": 1.0}
    tensors["rewards"] = tensors["rewards"][:4]  # fewer rewards than the size says
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={"saclab_buffer": json.dumps(meta)})
    with pytest.raises(SaclabError, match="rewards is missing or has the wrong shape"):
        ReplayBuffer(obs_dim=3, capacity=10).load(tmp_path / "bad.safetensors")
    meta["size"] = 11  # more than the capacity
    save_file(load_file(str(tmp_path / "buffer.safetensors")), str(tmp_path / "bad.safetensors"),
              metadata={"saclab_buffer": json.dumps(meta)})
    with pytest.raises(SaclabError, match="bad size"):
        ReplayBuffer(obs_dim=3, capacity=10).load(tmp_path / "bad.safetensors")
