"""Update time of the three encoders (MLP, MinAtar CNN, Nature CNN), and what it makes of a budget.

One SAC update (twin critics, target critics, actor, temperature; ``core.agent.update``), one
jitted call per update as in the Gymnasium online loop, on minibatches of a device-resident
dataset of random observations, for each encoder at its env's shapes, the default preset
otherwise (128 x 128 head), at two batch sizes (a convolution inside a ``lax.scan`` runs several
times slower on XLA:CPU, which is why the MinAtar encoder is written as a matrix product):

* mlp          CartPole (4 floats, 2 actions)
* minatar_cnn  MinAtar (10 x 10 x 4 bool channels, 6 actions): one 3x3 conv of 16 channels
* nature_cnn   Atari (4 x 84 x 84 uint8 frames, 6 actions): the DQN network, 512 units

Prints updates/s and ms per update (median of --repeats), and the hours one seed of the MinAtar
benchmark (1M env steps) and of Atari 100k would take at one update per env step on this device.

    taskset -c 1 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        python bench/cnn_update.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

from saclab.config import preset
from saclab.core.agent import Learner, init_state, update
from saclab.core.types import EnvSpec, batch_from_numpy
from saclab.runtime import enable_compilation_cache

SHAPES = {  # encoder: (env, observation shape, dtype, actions, env steps of one benchmark seed)
    "mlp": ("CartPole-v1", (4,), "float32", 2, 50_000),
    "minatar_cnn": ("MinAtar/Breakout-v1", (10, 10, 4), "bool", 6, 1_000_000),
    "nature_cnn": ("ALE/Pong-v5", (4, 84, 84), "uint8", 6, 100_000),
}


def observations(rng: np.random.Generator, n: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.random((n, int(np.prod(shape)))) < 0.1
    if dtype == "uint8":
        return rng.integers(0, 256, (n, int(np.prod(shape))), dtype=np.uint8)
    return rng.normal(size=(n, int(np.prod(shape)))).astype(np.float32)


def update_rate(encoder: str, batch_size: int, updates: int, repeats: int) -> float:
    env, shape, dtype, actions, _ = SHAPES[encoder]
    learner = Learner.from_config(preset("default").replace(batch_size=batch_size),
                                  EnvSpec.of_shape(env, shape, actions, dtype))
    assert learner.encoder == encoder
    rng = np.random.default_rng(0)
    n = max(4 * batch_size, 2048)
    obs, next_obs = observations(rng, n, shape, dtype), observations(rng, n, shape, dtype)
    data = jax.device_put(batch_from_numpy(obs, rng.integers(0, actions, n), rng.normal(size=n), next_obs,
                                           rng.random(n) < 0.05))
    batches = [jax.tree_util.tree_map(lambda x, i=i: x[i], data)
               for i in rng.integers(0, n, (updates, batch_size), dtype=np.int32)]
    state = init_state(learner, jax.random.PRNGKey(0))
    state, metrics = update(learner, state, batches[0])  # compiles
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            state, metrics = update(learner, state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return updates / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    p.add_argument("--updates", type=int, default=10, help="updates per timing (x10 for the MLP)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    enable_compilation_cache()
    print(f"device: {jax.devices()[0].device_kind}")
    print(f"{'encoder':12} {'batch':>5} {'updates/s':>10} {'ms/update':>10} {'env steps':>10} {'hours/seed':>10}")
    rows = []
    for encoder, (_, _, _, _, steps) in SHAPES.items():
        for batch in args.batch_sizes:
            rate = update_rate(encoder, batch, args.updates * (10 if encoder == "mlp" else 1), args.repeats)
            rows.append({"encoder": encoder, "batch": batch, "updates_per_s": round(rate, 2),
                         "hours_per_seed": round(steps / rate / 3600, 2)})
            hours = steps / rate / 3600
            print(f"{encoder:12} {batch:>5} {rate:>10.1f} {1000 / rate:>10.2f} {steps:>10} {hours:>10.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
