"""Range checks made before a run starts, so that a run that starts can finish: values that
``SACConfig`` accepts but that no env, file or machine can hold (seeds beyond the generators'
range, counts beyond HDF5's and JSON's integer types, a replay buffer larger than memory)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from saclab.config import SACConfig
from saclab.core.networks import resolve_encoder
from saclab.core.types import EnvSpec, observation_dtype
from saclab.envs.make import frame_stack
from saclab.errors import SaclabError

MAX_SEED = 2**31 - 1
"""JAX's PRNGKey takes a 32-bit seed; NumPy's generators any non-negative one."""
MAX_COUNT = 2**31 - 1
"""Steps, episodes and caps are stored as int32 where JAX folds them into keys, and as HDF5 integers."""
MAX_EVAL_EPISODES = 100_000
"""Evaluation runs one sub-env per episode, all at once."""


def available_memory_bytes() -> int | None:
    """Memory this machine can still give (Linux: MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def replay_buffer_bytes(config: SACConfig, obs_dim: int, obs_dtype: str = "float32", frame_stack: int = 0) -> int:
    """Bytes of the preallocated replay buffer: two observations (float32, or 1 byte a value when the
    env emits uint8 or bool: ``core.types.observation_dtype``), an int32 action, a float32 reward and
    two bools per slot, plus a float64 sum tree when prioritised.  With ``frame_stack`` k the
    observations are one frame a slot (and 4k more; ``data.frame_stack``) and an int64 frame number:
    the ring starts at that size and grows only with episodes shorter than the stack."""
    obs_bytes = observation_dtype(obs_dtype).itemsize
    if frame_stack > 1:
        frame = obs_bytes * obs_dim // frame_stack
        observations = (config.buffer_size + 4 * frame_stack) * frame + 8 * config.buffer_size
    else:
        observations = 2 * obs_bytes * obs_dim * config.buffer_size
    tree = 2 * 8 * config.buffer_size if config.prioritized_replay else 0
    return observations + config.buffer_size * (4 + 4 + 2) + tree


def _encoder_parameters(encoder: str, obs_shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, output features) of one observation encoder (``core.networks``)."""
    if encoder == "mlp":
        return 0, math.prod(obs_shape)
    h, w, c = _hwc(obs_shape)
    if encoder == "minatar_cnn":
        return 9 * c * 16 + 16, (h - 2) * (w - 2) * 16
    params, size = 0, (h, w)
    for features, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):  # nature_cnn
        params += kernel * kernel * c * features + features
        size, c = ((size[0] - kernel) // stride + 1, (size[1] - kernel) // stride + 1), features
    return params + size[0] * size[1] * c * 512 + 512, 512


def _hwc(obs_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if obs_shape[0] < obs_shape[2] and obs_shape[1] == obs_shape[2]:  # a CxHxW frame stack
        return obs_shape[1], obs_shape[2], obs_shape[0]
    return obs_shape[0], obs_shape[1], obs_shape[2]


def network_bytes(config: SACConfig, spec: EnvSpec) -> int:
    """Bytes of the learner's parameters: the actor with its two Adam moments, and twin critics
    with their targets and moments (float32); each network owns its encoder."""
    encoder = resolve_encoder(config.encoder, tuple(spec.obs_shape))
    encoder_params, features = _encoder_parameters(encoder, tuple(spec.obs_shape))
    widths = [features, *config.hidden_sizes, spec.num_actions]
    one_network = encoder_params + sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return 4 * one_network * (3 + 2 * 4)


def check_seeds(seeds: Sequence[int]) -> None:
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise SaclabError(f"seeds must lie in [0, {MAX_SEED}], got {seed}")


def check_run(config: SACConfig, seeds: Sequence[int], spec: EnvSpec, online: bool = True,
              parallel_runs: int = 1) -> None:
    """Refuse, with one line, a run of ``config`` on ``spec``'s env that could not finish.

    ``parallel_runs``: how many such runs will hold their memory at the same time."""
    check_seeds(seeds)
    counts = {"total_steps": config.total_steps, "total_episodes": config.total_episodes,
              "max_episode_steps": config.max_episode_steps, "buffer_size": config.buffer_size,
              "batch_size": config.batch_size, "epochs": config.epochs,
              "checkpoint_every_steps": config.checkpoint_every_steps,
              "learning_starts": config.learning_starts}
    for name, value in counts.items():
        if value > MAX_COUNT:
            raise SaclabError(f"{name} must be <= {MAX_COUNT}, got {value}")
    if config.total_steps * config.updates_per_step > MAX_COUNT:
        raise SaclabError(f"total_steps x updates_per_step must be <= {MAX_COUNT}, got "
                          f"{config.total_steps * config.updates_per_step}")
    for name in ("eval_episodes", "offline_eval_episodes"):
        if getattr(config, name) > MAX_EVAL_EPISODES:
            raise SaclabError(f"{name} must be <= {MAX_EVAL_EPISODES}, got {getattr(config, name)}")
    available = available_memory_bytes()
    if available is None:
        return
    runs = max(parallel_runs, 1)
    networks = network_bytes(config, spec) * runs
    if networks > available:
        raise SaclabError(f"networks of hidden sizes {config.hidden_sizes} need {networks / 2**30:.1f} GiB for "
                          f"{runs} run(s), more than the {available / 2**30:.1f} GiB available")
    stack = frame_stack(config.env, spec.obs_shape)
    buffers = replay_buffer_bytes(config, spec.obs_dim, spec.obs_dtype, stack) * runs if online else 0
    if networks + buffers > available:
        raise SaclabError(f"a replay buffer of {config.buffer_size} transitions needs {buffers / 2**30:.1f} GiB "
                          f"for {runs} run(s), more than the {available / 2**30:.1f} GiB available; "
                          "lower buffer_size")


__all__ = ["check_run", "check_seeds", "replay_buffer_bytes", "network_bytes", "available_memory_bytes", "MAX_SEED",
           "MAX_COUNT"]
