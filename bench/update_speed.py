"""Update speed of the notebook configuration, as ratios measured in one run.

Configuration: obs 4, 2 actions, 256x256 MLPs, batch 100 (CartPole, notebook).
Rows (updates per second, median of --repeats timings):

* floor        the 39 matrix products of one SAC+CQL update, timed bare (jitted scan)
* floor + Adam the same with the parameter updates SAC must do: Adam on the critics and the
               actor, Polyak averaging of the targets
* scan         saclab's update as a lax.scan over minibatches (offline epochs), CQL off / on
* online loop  saclab's whole online step (env step, buffer insert, O(batch) sample,
               update, next action) through ``train_online``; and with ``update_every 8``
               (8 steps' updates in one scanned call, SB3's train_freq/gradient_steps)
* notebook     the notebook's ``train_networks`` (../shared/bench/seed_reference.py, PyTorch)
               at 1k and 100k stored transitions, if ``--torch-python`` points at a Python
               with torch==2.13.0 installed (run in a subprocess, one thread)

The rows are timed in interleaved rounds (``--repeats``), and a row's ratio is the median of its
per-round ratios to that round's floor, so load bursts on a shared machine hit every row alike.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from saclab.config import preset
from saclab.core.agent import Learner, init_state, update_epoch
from saclab.core.types import EnvSpec, batch_from_numpy
from saclab.runtime import enable_compilation_cache

OBS, ACTIONS, HIDDEN, BATCH = 4, 2, 256, 100
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "seed_reference.py"


def floor_products(n_updates: int, optimiser: bool = False):
    """A jitted scan doing exactly the 39 GEMMs of one SAC+CQL update per step.

    Five distinct networks (2 critics, 2 target critics, the actor) and distinct inputs, so XLA
    cannot merge identical products; each step's weights depend on the last step's products.
    With ``optimiser``, the parameter updates are the ones SAC must do: Adam on the two critics and
    the actor, Polyak averaging of the targets (instead of a bare ``w - 1e-6 g``): the floor plus the
    update's unavoidable element-wise work.
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

    adam = optax.adam(3e-4)

    def apply(w, g, opt_state):
        if not optimiser:
            return [wi - 1e-6 * gi for wi, gi in zip(w, g, strict=True)], opt_state
        updates, opt_state = adam.update(g, opt_state)
        return optax.apply_updates(w, updates), opt_state

    def step(carry, batch):
        (critic1, critic2, target1, target2, actor), (opt1, opt2, opt_actor) = carry
        s, s_next = batch
        acts = [forward(c, s) for c in (critic1, critic2)]  # critics on s: 6
        t = forward(target1, s_next)[2] + forward(target2, s_next)[2]  # targets on s': 6
        t = t + forward(actor, s_next)[2]  # actor on s': 3
        grads = [backward(c, s, h1, h2, q - t) for c, (h1, h2, q) in zip((critic1, critic2), acts, strict=True)]
        critic1, opt1 = apply(critic1, grads[0], opt1)  # critic backward: 10
        critic2, opt2 = apply(critic2, grads[1], opt2)
        h1, h2, logits = forward(actor, s)  # actor on s: 3
        q = forward(critic1, s)[2] + forward(critic2, s)[2]  # updated critics on s: 6
        actor, opt_actor = apply(actor, backward(actor, s, h1, h2, logits - q), opt_actor)  # 5
        if optimiser:
            target1 = optax.incremental_update(critic1, target1, 0.005)
            target2 = optax.incremental_update(critic2, target2, 0.005)
        return ([critic1, critic2, target1, target2, actor], (opt1, opt2, opt_actor)), None  # 39 products in all

    opt_states = tuple(adam.init(nets[i]) for i in (0, 1, 4)) if optimiser else (None, None, None)
    run = jax.jit(lambda carry, xs: jax.lax.scan(step, carry, xs)[0])
    return run, (nets, opt_states), xs


def timed(fn: Callable[[], Any]) -> float:
    """Seconds of one fn() (its results waited for)."""
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def time_call(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of fn() after one warm-up call."""
    timed(fn)
    return statistics.median(timed(fn) for _ in range(repeats))


def scan_timer(cql_weight: float, n_updates: int) -> Callable[[], float]:
    """Seconds per update of saclab's update as one scan of ``n_updates`` (compiled on creation)."""
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

    timed(call)
    return lambda: timed(call) / n_updates


def floor_timer(n_updates: int, optimiser: bool = False) -> Callable[[], float]:
    """Seconds per update of ``floor_products`` (compiled on creation)."""
    run, carry, xs = floor_products(n_updates, optimiser)
    timed(lambda: run(carry, xs))
    return lambda: timed(lambda: run(carry, xs)) / n_updates


def online_timer(steps: int, tmp: Path, update_every: int = 1) -> Callable[[], float]:
    """Seconds per env step of train_online with the notebook configuration: the difference of runs
    of 1000 and 1000 + ``steps`` steps removes the setup, the first evaluation and the files; one
    update per step either way, with ``update_every`` K the updates of K steps in one call."""
    from saclab.runs.online import train_online

    config = preset("notebook").replace(total_episodes=0, total_steps=1, eval_every_episodes=10_000, eval_episodes=1,
                                        checkpoint_every_steps=0, max_episode_steps=200, update_every=update_every)
    runs = iter(range(10**6))

    def run(n: int) -> float:
        t = time.perf_counter()
        train_online(config.replace(total_steps=n), 0, tmp / f"k{update_every}-{next(runs)}", progress=False,
                     tensorboard=False, save_replay=False)
        return time.perf_counter() - t

    run(300)  # compiles
    return lambda: (run(1000 + steps) - run(1000)) / steps


def online_rate(steps: int, update_every: int = 1) -> float:
    """Online steps/s of train_online with the notebook configuration (``online_timer``, one round)."""
    with tempfile.TemporaryDirectory() as tmp:
        return 1.0 / online_timer(steps, Path(tmp), update_every)()


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

    with tempfile.TemporaryDirectory() as tmp:
        timers = {"floor (39 GEMMs)": floor_timer(args.updates),
                  "floor + Adam and Polyak": floor_timer(args.updates, optimiser=True),
                  "scan, SAC": scan_timer(0.0, args.updates),
                  "scan, SAC+CQL": scan_timer(5.0, args.updates),
                  "online loop (SAC)": online_timer(args.online_steps, Path(tmp)),
                  "online loop (SAC), update_every 8": online_timer(args.online_steps, Path(tmp), 8)}
        # Rounds interleave the rows, so a burst of load on the shared machine hits them alike;
        # each row's ratio is the median of its per-round ratios to that round's floor.
        seconds: dict[str, list[float]] = {name: [] for name in timers}
        for _ in range(args.repeats):
            for name, timer in timers.items():
                seconds[name].append(timer())
    floor_seconds = seconds["floor (39 GEMMs)"]
    rates = {name: 1.0 / statistics.median(ts) for name, ts in seconds.items()}
    ratios = {name: statistics.median(f / t for f, t in zip(floor_seconds, ts, strict=True))
              for name, ts in seconds.items()}
    floor = rates["floor (39 GEMMs)"]
    if args.torch_python:
        ref = reference_rates(args.torch_python)
        rates["notebook train_networks, 1k stored"] = ref["notebook_1000"]
        rates["notebook train_networks, 100k stored"] = ref["notebook_100000"]
        ratios.update({name: rates[name] / floor for name in rates if name not in ratios})

    print(f"device: {jax.devices()[0].device_kind}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"{'':40} {'updates/s':>10} {'ms/update':>10} {'x floor':>8}")
    for name, rate in rates.items():
        print(f"{name:40} {rate:>10.1f} {1000 / rate:>10.2f} {ratios[name]:>8.2f}")
    if args.torch_python:
        nb = rates["notebook train_networks, 100k stored"]
        print(f"saclab scan (SAC+CQL) vs notebook at 100k stored: {rates['scan, SAC+CQL'] / nb:.1f}x; "
              f"online loop vs notebook at 100k: {rates['online loop (SAC)'] / nb:.1f}x")
    json.dump({k: round(v, 2) for k, v in rates.items()}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
