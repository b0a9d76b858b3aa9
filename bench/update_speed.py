"""Update speed of the notebook configuration, as ratios measured in one run.

Configuration: obs 4, 2 actions, 256x256 MLPs, batch 100 (CartPole, notebook).
Rows (updates per second, median of --repeats timings):

* floor        the 39 matrix products of one SAC+CQL update, timed bare (jitted scan)
* scan         saclab's update as a lax.scan over minibatches (offline epochs), CQL off / on
* online loop  saclab's whole online step (env step, buffer insert, O(batch) sample,
               update, next action) through ``train_online``; and with ``update_every 8``
               (8 steps' updates in one scanned call, SB3's train_freq/gradient_steps)
* notebook     the notebook's ``train_networks`` (../shared/bench/seed_reference.py, PyTorch)
               at 1k and 100k stored transitions, if ``--torch-python`` points at a Python
               with torch==2.13.0 installed (run in a subprocess, one thread)

Run pinned to one core with one thread for stable numbers:

    taskset -c 1 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        python bench/update_speed.py --torch-python /path/to/torch-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from saclab.config import preset
from saclab.core.agent import Learner, init_state, update_epoch
from saclab.core.types import EnvSpec, batch_from_numpy
from saclab.runtime import enable_compilation_cache

OBS, ACTIONS, HIDDEN, BATCH = 4, 2, 256, 100
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "seed_reference.py"


def floor_products(n_updates: int):
    """A jitted scan doing exactly the 39 GEMMs of one SAC+CQL update per step.

    Five distinct networks (2 critics, 2 target critics, the actor) and distinct inputs, so XLA
    cannot merge identical products; each step's weights depend on the last step's products.
    """
    keys = jax.random.split(jax.random.PRNGKey(0), 16)
    shapes = [(OBS, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, ACTIONS)]
    nets = [[jax.random.normal(keys[3 * i + j], s) * 0.05 for j, s in enumerate(shapes)] for i in range(5)]
    xs = jax.random.normal(keys[15], (n_updates, 2, BATCH, OBS))  # (s, s') per update

    def forward(w, x):  # 3 products
        h1 = jax.nn.relu(x @ w[0])
        h2 = jax.nn.relu(h1 @ w[1])
        return h1, h2, h2 @ w[2]

    def backward(w, x, h1, h2, g):  # 5 products: dW3, dh2, dW2, dh1, dW1
        dh2 = g @ w[2].T
        dh1 = dh2 @ w[1].T
        return [x.T @ dh1, h1.T @ dh2, h2.T @ g]

    def step(nets, batch):
        s, s_next = batch
        critic1, critic2, target1, target2, actor = nets
        acts = [forward(c, s) for c in (critic1, critic2)]  # critics on s: 6
        t = forward(target1, s_next)[2] + forward(target2, s_next)[2]  # targets on s': 6
        t = t + forward(actor, s_next)[2]  # actor on s': 3
        grads = [backward(c, s, h1, h2, q - t) for c, (h1, h2, q) in zip((critic1, critic2), acts, strict=True)]
        critic1 = [w - 1e-6 * g for w, g in zip(critic1, grads[0], strict=True)]  # critic backward: 10
        critic2 = [w - 1e-6 * g for w, g in zip(critic2, grads[1], strict=True)]
        h1, h2, logits = forward(actor, s)  # actor on s: 3
        q = forward(critic1, s)[2] + forward(critic2, s)[2]  # updated critics on s: 6
        actor = [w - 1e-6 * g for w, g in zip(actor, backward(actor, s, h1, h2, logits - q), strict=True)]  # 5
        return [critic1, critic2, target1, target2, actor], None  # 39 products in all

    run = jax.jit(lambda nets, xs: jax.lax.scan(step, nets, xs)[0])
    return run, nets, xs


def time_call(fn, repeats: int) -> float:
    """Median seconds of fn() after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def scan_rate(cql_weight: float, n_updates: int, repeats: int) -> float:
    config = preset("notebook").replace(cql_weight=cql_weight)
    learner = Learner.from_config(config, EnvSpec("CartPole-v1", OBS, ACTIONS))
    r = np.random.default_rng(0)
    n = 50_000
    data = jax.device_put(batch_from_numpy(r.normal(size=(n, OBS)), r.integers(0, 2, n), np.ones(n),
                                           r.normal(size=(n, OBS)), r.random(n) < 0.05))
    idx = jnp.asarray(r.permutation(n)[: n_updates * BATCH].reshape(n_updates, BATCH).astype(np.int32))
    state = init_state(learner, jax.random.PRNGKey(0))

    def call():
        return update_epoch(learner, jax.tree_util.tree_map(jnp.copy, state), data, idx)[1]

    return n_updates / time_call(call, repeats)


def online_rate(steps: int, update_every: int = 1) -> float:
    """Online steps/s of train_online with the notebook configuration (difference of two runs
    removes compile/trace time; evaluation is kept rare); one update per step either way, with
    ``update_every`` K the updates of K steps in one call."""
    from saclab.runs.online import train_online

    config = preset("notebook").replace(total_episodes=0, total_steps=1, eval_every_episodes=10_000, eval_episodes=1,
                                        checkpoint_every_steps=0, max_episode_steps=200, update_every=update_every)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (300, 1000, 1000 + steps):  # the first run compiles
            t = time.perf_counter()
            train_online(config.replace(total_steps=n), 0, Path(tmp) / str(n), progress=False,
                         tensorboard=False, save_replay=False)
            times.append(time.perf_counter() - t)
    return steps / (times[2] - times[1])


def reference_rates(torch_python: str) -> dict[str, float]:
    code = f"""
import sys, time, json, statistics
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {str(REFERENCE.parent)!r})
import seed_reference as ref
import gymnasium as gym
env = ref.OldGymAPI(gym.make('CartPole-v1'), seed=0) if hasattr(ref, 'OldGymAPI') else gym.make('CartPole-v1')
out = {{}}
for stored in (1000, 100000):
    agent = ref.SACAgent(env)
    rng = np.random.default_rng(0)
    for i in range(stored):
        s = rng.normal(size=4).astype(np.float32)
        agent.replay_buffer.add_transition((s, int(i % 2), 1.0, s, False))
    for _ in range(5):
        agent.train_networks()
    n = 60
    t = time.perf_counter()
    for _ in range(n):
        agent.train_networks()
    out[f'notebook_{{stored}}'] = n / (time.perf_counter() - t)
print(json.dumps(out))
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run([torch_python, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--updates", type=int, default=300, help="updates per timed scan")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--online-steps", type=int, default=3000)
    p.add_argument("--torch-python", default=None, help="Python with torch==2.13.0 for the notebook baseline")
    args = p.parse_args()
    enable_compilation_cache()

    run, w, xs = floor_products(args.updates)
    floor = args.updates / time_call(lambda: run(w, xs), args.repeats)
    rates = {"floor (39 GEMMs)": floor,
             "scan, SAC": scan_rate(0.0, args.updates, args.repeats),
             "scan, SAC+CQL": scan_rate(5.0, args.updates, args.repeats),
             "online loop (SAC)": online_rate(args.online_steps),
             "online loop (SAC), update_every 8": online_rate(args.online_steps, 8)}
    if args.torch_python:
        ref = reference_rates(args.torch_python)
        rates["notebook train_networks, 1k stored"] = ref["notebook_1000"]
        rates["notebook train_networks, 100k stored"] = ref["notebook_100000"]

    print(f"device: {jax.devices()[0].device_kind}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"{'':40} {'updates/s':>10} {'ms/update':>10} {'x floor':>8}")
    for name, rate in rates.items():
        print(f"{name:40} {rate:>10.1f} {1000 / rate:>10.2f} {rate / floor:>8.2f}")
    if args.torch_python:
        nb = rates["notebook train_networks, 100k stored"]
        print(f"saclab scan (SAC+CQL) vs notebook at 100k stored: {rates['scan, SAC+CQL'] / nb:.1f}x; "
              f"online loop vs notebook at 100k: {rates['online loop (SAC)'] / nb:.1f}x")
    json.dump({k: round(v, 2) for k, v in rates.items()}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
