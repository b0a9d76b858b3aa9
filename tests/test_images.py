"""Image observations from Gymnasium envs (MinAtar, Atari): uint8/bool storage, scaling inside the
network, the extras' errors, and tiny online, offline and collection runs.  Tests that need an
extra skip when it is not installed."""

import functools
import json
import sys

import gymnasium as gym
import jax
import numpy as np
import pytest
from resuming import crash_then_resume

from saclab.config import preset
from saclab.core.agent import Learner, init_state
from saclab.core.networks import Actor
from saclab.core.types import EnvSpec, Transition, batch_from_numpy, observation_array
from saclab.data.buffer import ReplayBuffer
from saclab.data.dataset import Dataset
from saclab.errors import SaclabError
from saclab.runs.checkpoint import pytree_to_arrays
from saclab.runs.preflight import network_bytes, replay_buffer_bytes

MINATAR = "MinAtar/Breakout-v1"
ATARI = "ALE/Pong-v5"


class Crash(RuntimeError):
    pass


# ---------------------------------------------------------------------------- no extra needed
def test_uint8_and_bool_observations_stay_compact_until_the_network():
    assert observation_array(np.zeros(3, np.uint8)).dtype == np.uint8
    assert observation_array(np.zeros(3, bool)).dtype == bool
    assert observation_array(np.zeros(3, np.float64)).dtype == np.float32
    batch = batch_from_numpy(np.zeros((2, 8), np.uint8), [0, 1], [0, 0], np.zeros((2, 8), np.uint8), [0, 0])
    assert batch.obs.dtype == np.uint8 and batch.next_obs.dtype == np.uint8


def test_the_network_scales_uint8_by_1_255_reads_bool_as_0_1_and_unflattens():
    actor = Actor((8,), 3, "minatar_cnn", (5, 5, 2))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 5, 5, 2)).astype(np.uint8)
    params = actor.init(jax.random.PRNGKey(0), np.zeros((1, 5, 5, 2), np.float32))
    np.testing.assert_allclose(actor.apply(params, pixels), actor.apply(params, pixels / np.float32(255)), rtol=1e-5)
    np.testing.assert_allclose(actor.apply(params, pixels.reshape(4, -1)), actor.apply(params, pixels), rtol=1e-6)
    channels = pixels > 127
    np.testing.assert_allclose(actor.apply(params, channels), actor.apply(params, channels.astype(np.float32)))


def test_a_dataset_of_frame_stacks_stores_each_frame_about_once_per_array(tmp_path):
    # Atari's 4-frame stacks repeat 3 of 4 frames from one row to the next.  The observation arrays
    # are gzip-compressed in chunks of whole rows, and a repeated frame lies 3 frames (21 kB) back,
    # inside deflate's 32 kB window: on random (incompressible) frames the file holds about one
    # frame per row in each of the two observation arrays, not 4 + 4.
    n, frame = 200, 84 * 84
    frames = np.random.default_rng(0).integers(0, 256, size=(n + 4, frame), dtype=np.uint8)
    obs = np.stack([frames[i:i + 4].reshape(-1) for i in range(n)])
    next_obs = np.stack([frames[i + 1:i + 5].reshape(-1) for i in range(n)])
    never = np.zeros(n, bool)
    dataset = Dataset(obs, np.zeros(n, np.int64), np.zeros(n, np.float32), next_obs, never, never,
                      np.r_[True, never[1:]], metadata={"env_id": ATARI, "obs_shape": [4, 84, 84]})
    path = dataset.save(tmp_path / "frames.h5")
    assert path.stat().st_size < 2.5 * n * frame  # stored whole: 8 frames per transition
    np.testing.assert_array_equal(Dataset.load(path).next_observations, next_obs)


def test_the_replay_buffer_stores_images_flat_in_their_dtype(tmp_path):
    buffer = ReplayBuffer(2 * 3 * 3, capacity=4, obs_dtype="bool")
    obs = np.random.default_rng(0).random((3, 3, 2)) > 0.5
    buffer.add(obs, 1, 1.0, ~obs, False, False)
    assert buffer.storage.observations.dtype == bool
    np.testing.assert_array_equal(buffer.storage.observations[0], obs.reshape(-1))
    buffer.save(tmp_path / "b.safetensors")
    again = ReplayBuffer(18, capacity=4, obs_dtype="bool")
    again.load(tmp_path / "b.safetensors")
    np.testing.assert_array_equal(again.storage.next_observations[0], ~obs.reshape(-1))
    with pytest.raises(SaclabError, match="stores observations as bool; expected float32"):
        ReplayBuffer(18, capacity=4).load(tmp_path / "b.safetensors")


def test_uint8_dataset_round_trip_keeps_dtype_and_values_in_a_smaller_file(tmp_path):
    rng = np.random.default_rng(0)
    n, shape = 64, (4, 84, 84)
    frames = rng.integers(0, 256, (n + 1, int(np.prod(shape)))).astype(np.uint8)
    frames[:, ::3] = 0  # some structure, as frames have
    transitions = Transition(frames[:-1], rng.integers(0, 6, n), rng.random(n).astype(np.float32), frames[1:],
                             np.arange(n) == n - 1, np.zeros(n, bool))
    starts = np.arange(n) == 0
    meta = {"env_id": ATARI, "num_actions": 6, "obs_shape": list(shape)}
    compact = Dataset.from_transitions(transitions, starts, meta).save(tmp_path / "u8.h5")
    wide = Dataset.from_transitions(transitions._replace(observations=frames[:-1].astype(np.float32),
                                                         next_observations=frames[1:].astype(np.float32)),
                                    starts, meta).save(tmp_path / "f32.h5")
    loaded, wide_bytes = Dataset.load(compact), Dataset.load(wide).observations.nbytes
    assert loaded.observations.dtype == np.uint8 and loaded.next_observations.dtype == np.uint8
    np.testing.assert_array_equal(loaded.observations, frames[:-1])
    np.testing.assert_array_equal(loaded.next_observations, frames[1:])
    assert loaded.obs_shape == shape
    assert loaded.observations.nbytes == wide_bytes // 4
    assert compact.stat().st_size < 0.75 * wide.stat().st_size  # noise-like pixels: gzip gains little on bytes
    bools = Dataset.from_transitions(transitions._replace(observations=frames[:-1] > 127,
                                                          next_observations=frames[1:] > 127), starts, meta)
    assert Dataset.load(bools.save(tmp_path / "b.h5")).observations.dtype == bool


@pytest.mark.parametrize("dtype", ["uint8", "bool"])
def test_minari_round_trip_keeps_image_shape_and_dtype(tmp_path, dtype):
    pytest.importorskip("minari")
    from saclab.data.minari_io import export_minari, import_minari

    rng = np.random.default_rng(0)
    n, shape = 12, (5, 5, 3)
    frames = rng.integers(0, 256, (n + 1, 75)).astype(np.uint8)
    frames = frames > 127 if dtype == "bool" else frames
    transitions = Transition(frames[:-1], rng.integers(0, 3, n), np.ones(n, np.float32), frames[1:],
                             np.arange(n) == 5, np.arange(n) == n - 1)
    d = Dataset.from_transitions(transitions, np.isin(np.arange(n), [0, 6]),
                                 {"num_actions": 3, "obs_shape": list(shape)})
    path = export_minari(d, f"saclab/images-{dtype}-v0", root=tmp_path / "minari")
    e = import_minari(path)
    assert e.observations.dtype == np.dtype(dtype) and e.obs_shape == shape
    np.testing.assert_array_equal(e.observations, d.observations)
    np.testing.assert_array_equal(e.next_observations, d.next_observations)


def test_the_frame_ring_stores_each_frame_once_and_gives_back_the_stacks_exactly(tmp_path, monkeypatch):
    # Episodes of 1 to 30 steps (so the ring must grow), terminations and truncations, a buffer that
    # wraps: every stored stack read back from the ring equals the one a whole-stack buffer holds.
    rng = np.random.default_rng(0)
    k, frame, capacity = 4, 12, 20
    whole = ReplayBuffer(k * frame, capacity, obs_dtype="uint8")
    ring = ReplayBuffer(k * frame, capacity, obs_dtype="uint8", frame_stack=k)
    for length in (5, 1, 2, 9, 3, 1, 1, 1, 1, 1, 1, 6, 4, 30, 1, 2):
        frames = rng.integers(0, 256, (length + k, frame), dtype=np.uint8)
        for t in range(length):
            last = t == length - 1
            for buffer in (whole, ring):
                buffer.add(frames[t:t + k], 1, 0.5, frames[t + 1:t + k + 1], last and length % 2 == 0,
                           last and length % 2 == 1)
            stored = np.arange(len(whole))
            np.testing.assert_array_equal(ring.storage.observations[stored], whole.storage.observations[stored])
            np.testing.assert_array_equal(ring.storage.next_observations[stored],
                                          whole.storage.next_observations[stored])
    assert ring.frames.written < 4 * 66 and len(ring.frames.frames) > capacity + 4 * k  # grew for the short ones
    ring.save(tmp_path / "ring.safetensors")
    again = ReplayBuffer(k * frame, capacity, obs_dtype="uint8", frame_stack=k)
    again.load(tmp_path / "ring.safetensors")
    everything = np.arange(capacity)
    for name in ("obs", "next_obs", "rewards", "terminated"):
        np.testing.assert_array_equal(getattr(again.gather(everything), name), getattr(whole.gather(everything), name))
    with pytest.raises(SaclabError, match="frame stacks one frame at a time"):
        ReplayBuffer(k * frame, capacity, obs_dtype="uint8").load(tmp_path / "ring.safetensors")
    # replay.h5 from the ring is built 10 rows at a time (chunks of 5 rows), and holds what the
    # whole-stack buffer's does
    from saclab.config import preset
    from saclab.data import dataset as dataset_module
    from saclab.data.dataset import ARRAYS, save_replay

    monkeypatch.setattr(dataset_module, "CHUNK_BYTES", 5 * k * frame)
    monkeypatch.setattr(dataset_module, "ROW_BLOCK_BYTES", 10 * k * frame)
    config = preset("test").replace(env="CartPole-v1")
    from_ring = Dataset.load(save_replay(ring, config, 0, "ring", tmp_path / "ring.h5"))
    from_whole = Dataset.load(save_replay(whole, config, 0, "whole", tmp_path / "whole.h5"))
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(from_ring, name), getattr(from_whole, name), err_msg=name)
    np.testing.assert_array_equal(from_ring.observations, whole.transitions().observations)
    assert from_ring.observations.dtype == np.uint8 and len(from_ring) == capacity
    with pytest.raises(SaclabError, match="shifted by one frame"):
        ring.add(frames[:k], 0, 0.0, frames[:k], False, False)  # not a stack shifted by one frame


def test_a_frame_ring_that_has_not_wrapped_saves_only_the_frames_written(tmp_path):
    # capacity 1000 (a ring of 1016 frames), 7 transitions of one episode: 4 + 7 = 11 frames saved,
    # and the loaded buffer is the same ring (it takes further transitions and gives the same stacks)
    import json

    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    k, frame = 4, 6
    frames = np.random.default_rng(1).integers(0, 256, (20, frame), dtype=np.uint8)
    buffer = ReplayBuffer(k * frame, 1000, obs_dtype="uint8", frame_stack=k)
    for t in range(7):
        buffer.add(frames[t:t + k], t % 2, 1.0, frames[t + 1:t + k + 1], False, False)
    buffer.save(tmp_path / "b.safetensors")
    assert load_file(str(tmp_path / "b.safetensors"))["frames"].shape == (11, frame)
    again = ReplayBuffer(k * frame, 1000, obs_dtype="uint8", frame_stack=k)
    again.load(tmp_path / "b.safetensors")
    assert len(again.frames.frames) == len(buffer.frames.frames) == 1016
    for b in (buffer, again):
        b.add(frames[7:7 + k], 0, 1.0, frames[8:8 + k], True, False)
    everything = np.arange(8)
    np.testing.assert_array_equal(again.gather(everything).obs, buffer.gather(everything).obs)
    np.testing.assert_array_equal(again.gather(everything).next_obs, buffer.gather(everything).next_obs)
    # a file whose ring is smaller than a fresh one's is refused with one line
    tensors = load_file(str(tmp_path / "b.safetensors"))
    with safe_open(str(tmp_path / "b.safetensors"), framework="numpy") as f:
        meta = json.loads(f.metadata()["saclab_buffer"])
    bad = {"saclab_buffer": json.dumps({**meta, "frame_rows": 8})}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=bad)
    with pytest.raises(SaclabError, match="frame-stack storage does not fit"):
        ReplayBuffer(k * frame, 1000, obs_dtype="uint8", frame_stack=k).load(tmp_path / "bad.safetensors")


def test_preflight_counts_image_bytes_and_cnn_parameters():
    config = preset("test")
    frames = EnvSpec.of_shape(ATARI, (4, 84, 84), 6, "uint8")
    per_slot_u8 = replay_buffer_bytes(config, frames.obs_dim, "uint8") / config.buffer_size
    assert per_slot_u8 == 2 * 28224 + 10  # two 4x84x84 byte stacks, an int32 action, a float32 reward, 2 flags
    assert replay_buffer_bytes(config, frames.obs_dim) / config.buffer_size == 2 * 4 * 28224 + 10
    ring = replay_buffer_bytes(config, frames.obs_dim, "uint8", frame_stack=4)  # one 84x84 frame a slot
    assert ring == (config.buffer_size + 16) * 7056 + config.buffer_size * (8 + 10)
    for spec in (frames, EnvSpec.of_shape(MINATAR, (10, 10, 4), 3, "bool")):
        learner = Learner.from_config(config, spec)
        state = jax.eval_shape(functools.partial(init_state, learner), jax.random.PRNGKey(0))
        actor = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(state.actor_params))
        assert network_bytes(config, spec) == 4 * actor * 11, spec.env_id  # actor+2 moments, 2 critics x 4


def test_a_run_without_a_simulator_keeps_its_image_shape_and_dtype_in_the_checkpoint(tmp_path):
    from saclab.runs.offline_records import checkpoint_meta
    from saclab.runs.policy import saved_spec

    spec = EnvSpec.of_shape("", (10, 10, 4), 3, "bool")
    meta = checkpoint_meta(preset("test").replace(env=""), 0, {"epoch": 1, "updates": 1, "wall_time": 0.0},
                           np.random.default_rng(0), {"sha256": "x"}, spec)
    assert saved_spec(json.loads(json.dumps(meta)), tmp_path) == spec
    meta["spec"]["obs_shape"] = [10, 10, 5]  # does not fit obs_dim 400
    with pytest.raises(SaclabError, match="corrupt checkpoint"):
        saved_spec(meta, tmp_path)
    del meta["spec"]["obs_shape"]  # a checkpoint from before image observations: flat
    assert saved_spec(meta, tmp_path) == EnvSpec("", 400, 3)


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    from saclab.envs.make import env_spec

    monkeypatch.setattr(gym, "registry", {k: v for k, v in gym.registry.items() if not k.startswith("MinAtar/")})
    monkeypatch.setitem(sys.modules, "minatar.gym", None)  # import fails as if not installed
    with pytest.raises(SaclabError, match=r"needs the minatar extra: pip install 'saclab\[minatar\]'"):
        env_spec(MINATAR)
    monkeypatch.setattr(gym, "registry", {k: v for k, v in gym.registry.items() if not k.startswith("ALE/")})
    monkeypatch.setitem(sys.modules, "ale_py", None)
    with pytest.raises(SaclabError, match=r"pip install 'saclab\[atari\]'"):
        env_spec(ATARI)


def test_a_registered_env_without_its_simulator_is_one_line_naming_the_box2d_extra(monkeypatch):
    from saclab.envs import make

    def absent(*args, **kwargs):  # what Gymnasium raises for LunarLander without Box2D
        raise gym.error.DependencyNotInstalled('Box2D is not installed, you can install it by run `pip install swig`'
                                               ' followed by `pip install "gymnasium[box2d]"`')

    monkeypatch.setattr(make.gym, "make", absent)
    with pytest.raises(SaclabError, match=r"^LunarLander-v3 needs the box2d extra: pip install 'saclab\[box2d\]' "
                                          r"\(Box2D is not installed") as caught:
        make.make_env("LunarLander-v3")
    assert "\n" not in str(caught.value) and "unknown" not in str(caught.value)
    monkeypatch.setattr(make.gym, "make_vec", absent)
    with pytest.raises(SaclabError, match=r"^LunarLander-v3 needs the box2d extra: pip install 'saclab\[box2d\]'"):
        make.make_vector_env("LunarLander-v3", 2)


# ---------------------------------------------------------------------------- MinAtar
def test_minatar_rng_state_round_trip_replays_the_same_steps():
    pytest.importorskip("minatar")
    from saclab.envs.make import make_env, rng_state, set_rng_state

    env, spec = make_env(MINATAR, 50)
    assert spec.obs_shape == (10, 10, 4) and spec.obs_dtype == "bool"
    env.reset(seed=1)
    for action in (1, 2, 1):
        env.step(action)
    state = json.loads(json.dumps(rng_state(env)))  # JSON-able, as a checkpoint at an episode's end holds it

    def rollout():  # from a reset: at an episode's end the generator is the env's whole state
        return [env.reset()[0]] + [env.step(a)[0].copy() for a in (0, 1, 2, 2, 1, 0, 2) * 3]

    first = rollout()
    set_rng_state(env, state)
    for a, b in zip(first, rollout(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_minatar_online_run_resumes_exactly_and_trains_offline_cql(tmp_path):
    pytest.importorskip("minatar")
    from saclab.data.collect import collect
    from saclab.runs.offline import train_offline
    from saclab.runs.online import train_online

    config = preset("test").replace(env=MINATAR, total_steps=300, checkpoint_every_steps=100,
                                    eval_every_episodes=8, eval_episodes=2, learning_starts=64)
    full = train_online(config, seed=0, run_dir=tmp_path / "full", progress=False)
    for name in ("config.json", "evaluations.csv", "metrics.jsonl", "result.json", "replay.h5"):
        assert (tmp_path / "full" / name).is_file(), name
    assert np.isfinite(full.summary["final_q_data"]) and np.isfinite(full.summary["final_alpha"])
    replay = Dataset.load(tmp_path / "full" / "replay.h5")
    assert replay.observations.dtype == bool and replay.obs_shape == (10, 10, 4) and len(replay) == 300
    resumed = crash_then_resume(train_online, config, tmp_path / "cut", after_step=150)
    for k, v in pytree_to_arrays(full.state).items():
        np.testing.assert_array_equal(v, pytree_to_arrays(resumed.state)[k], err_msg=k)

    data = collect(env_id=MINATAR, policy="random", steps=200, seed=0, num_envs=2, max_episode_steps=100,
                   progress=False)
    assert data.observations.dtype == bool and data.obs_shape == (10, 10, 4)
    cql = train_offline(config.replace(cql_weight=5.0, epochs=1, offline_eval_episodes=2), data, seed=0,
                        run_dir=tmp_path / "cql", progress=False)
    assert (tmp_path / "cql" / "result.json").is_file()
    metrics = [json.loads(line) for line in (tmp_path / "cql" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(np.isfinite(m["critic_loss"]) and np.isfinite(m["cql_penalty"]) for m in metrics)
    assert np.isfinite(cql.summary["final_return"])

    from saclab.runs.export import export_policy  # NumPy inference runs MLPs only: one line, nothing written
    with pytest.raises(SaclabError, match="MLP actors on flat observations only"):
        export_policy(tmp_path / "cql", tmp_path / "policy")
    assert not (tmp_path / "policy").exists()


# ---------------------------------------------------------------------------- Atari
def test_atari_frames_are_4x84x84_uint8_stacks_for_the_nature_cnn():
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from saclab.envs.make import make_env, make_vector_env

    env, spec = make_env(ATARI, 20)
    assert spec.obs_shape == (4, 84, 84) and spec.obs_dtype == "uint8"  # channel first: frames stacked on axis 0
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    env.close()
    vector = make_vector_env(ATARI, 2, 5)
    batch, _ = vector.reset(seed=0)
    assert batch.shape == (2, 4, 84, 84) and batch.dtype == np.uint8
    vector.close()
    assert Learner.from_config(preset("test"), spec).encoder == "nature_cnn"


def test_atari_online_loop_stores_uint8_frames_and_resumes_exactly(tmp_path):
    # A few steps, no update (the Nature CNN's update is slow on a CPU): acting, evaluation, replay.h5,
    # and a resume that restores the emulator (its state and generator, saved at an episode's end).
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from saclab.runs.online import train_online

    config = preset("test").replace(env=ATARI, total_steps=30, learning_starts=1000, max_episode_steps=10,
                                    eval_every_episodes=100, eval_episodes=2, checkpoint_every_steps=10)
    run = train_online(config, seed=0, run_dir=tmp_path / "pong", progress=False, tensorboard=False)
    replay = Dataset.load(tmp_path / "pong" / "replay.h5")
    assert replay.observations.dtype == np.uint8 and replay.obs_shape == (4, 84, 84) and len(replay) == 30
    assert replay.truncations.sum() == 3 and run.summary["episodes"] == 3  # 10-step episodes, counted in agent steps

    def crash(info):
        if info["step"] >= 20:
            raise Crash()

    with pytest.raises(Crash):
        train_online(config, seed=0, run_dir=tmp_path / "cut", progress=False, tensorboard=False, on_episode_end=crash)
    train_online(config, seed=0, run_dir=tmp_path / "cut", resume=True, progress=False, tensorboard=False)
    resumed = Dataset.load(tmp_path / "cut" / "replay.h5")
    np.testing.assert_array_equal(resumed.observations, replay.observations)
    np.testing.assert_array_equal(resumed.next_observations, replay.next_observations)
    np.testing.assert_array_equal(resumed.actions, replay.actions)
    from safetensors import safe_open  # the checkpointed buffer holds frames, each once, not stacks

    with safe_open(str(tmp_path / "cut" / "checkpoint" / "buffer.safetensors"), framework="numpy") as f:
        assert "frames" in f.keys() and "observations" not in f.keys()
        assert f.get_tensor("frames").shape[1] == 84 * 84

    from saclab.envs.make import make_env, set_rng_state  # a crafted emulator state: one line, no crash
    env, _ = make_env(ATARI, 10)
    env.reset(seed=0)
    with pytest.raises(SaclabError, match="ale_state cannot be restored"):
        set_rng_state(env, {**env.unwrapped.np_random.bit_generator.state, "ale_state": "Z2FyYmFnZQ=="})
    env.close()
