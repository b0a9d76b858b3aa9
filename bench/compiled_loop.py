"""Update rate of the compiled online loop (gymnax CartPole) against the floor and the Gymnasium loop, in one run.

Configuration: the notebook's (obs 4, 2 actions, 256x256 MLPs, batch 100, one update per env step).
Rows (updates per second, median of --repeats; "x floor" is the median of per-repeat ratios, the rows
timed in turn within each repeat, because this machine's load changes within a run):

* floor            the 39 matrix products of one SAC+CQL update, timed bare (bench/update_speed.py)
* scan, SAC        saclab's update as a lax.scan over minibatches of a device-resident dataset
* compiled loop    ``runs.compiled.run_chunk`` on gymnax:CartPole-v1: per step an action, a gymnax step,
                   a ring-buffer write, a minibatch gather and one update, --chunk steps per call
                   (timed after the buffer holds learning_starts transitions)
* Gymnasium loop   ``train_online`` on Gymnasium CartPole-v1 (one device call per step)

Run pinned to one core with one XLA thread:

    taskset -c 0 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        python bench/compiled_loop.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from saclab.config import preset
from saclab.core.agent import Learner, init_state, update_epoch
from saclab.core.types import EnvSpec, batch_from_numpy
from saclab.envs.gymnax_envs import make_gymnax
from saclab.runs.compiled import LoopSettings, init_loop, run_chunk
from saclab.runtime import enable_compilation_cache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from update_speed import OBS, floor_products, online_rate, time_call  # noqa: E402


def scan_call(n_updates: int):
    """One call of saclab's SAC update as a lax.scan over ``n_updates`` minibatches (update_speed.py's scan row)."""
    config = preset("notebook")
    learner = Learner.from_config(config, EnvSpec("CartPole-v1", OBS, 2))
    r = np.random.default_rng(0)
    n = 50_000
    data = jax.device_put(batch_from_numpy(r.normal(size=(n, OBS)), r.integers(0, 2, n), np.ones(n),
                                           r.normal(size=(n, OBS)), r.random(n) < 0.05))
    idx = jnp.asarray(r.permutation(n)[: n_updates * config.batch_size].reshape(n_updates, -1).astype(np.int32))
    state = init_state(learner, jax.random.PRNGKey(0))
    return lambda: update_epoch(learner, jax.tree_util.tree_map(jnp.copy, state), data, idx)[1]


def compiled_chunk(chunk: int):
    """A call that runs ``chunk`` steps of the compiled loop (each call continues the last one)."""
    config = preset("notebook").replace(env="gymnax:CartPole-v1", total_episodes=0, total_steps=chunk,
                                        buffer_size=100_000)
    env, env_params, spec = make_gymnax(config.env, config.max_episode_steps)
    learner = Learner.from_config(config, spec)
    settings = LoopSettings(config.batch_size, config.learning_starts, 1, False)
    loop = init_loop(learner, env, env_params, config, 0, spec.obs_dtype)

    def call():
        nonlocal loop
        loop, finished = run_chunk(learner, settings, env, chunk, env_params, loop)
        return finished

    jax.block_until_ready(call())  # compiles; fills the buffer past learning_starts
    return call


def interleaved(calls: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each call per repeat, the calls taken in turn within a repeat, so that a
    change in the machine's load hits every row alike (ratios are taken per repeat)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            jax.block_until_ready(call())
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--updates", type=int, default=300, help="updates per timed floor/scan call")
    p.add_argument("--chunk", type=int, default=1000, help="env steps per compiled call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--online-steps", type=int, default=2000)
    args = p.parse_args()
    enable_compilation_cache()

    run, weights, xs = floor_products(args.updates)
    jax.block_until_ready(run(weights, xs))
    scan = scan_call(args.updates)
    jax.block_until_ready(scan())
    steps = {"floor (39 GEMMs)": args.updates, "scan, SAC": args.updates,
             "compiled loop (gymnax CartPole)": args.chunk}
    times = interleaved({"floor (39 GEMMs)": lambda: run(weights, xs), "scan, SAC": scan,
                         "compiled loop (gymnax CartPole)": compiled_chunk(args.chunk)}, args.repeats)
    floor_before = args.updates / statistics.median(times["floor (39 GEMMs)"][-3:])
    gymnasium = online_rate(args.online_steps)
    floor_after = args.updates / time_call(lambda: run(weights, xs), 3)

    print(f"device: {jax.devices()[0].device_kind}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"cores allowed: {sorted(os.sched_getaffinity(0))}, {args.repeats} interleaved repeats")
    print(f"{'':36} {'updates/s':>10} {'x floor':>8}   (median rate; median of per-repeat ratios)")
    results = {}
    for name, seconds in times.items():
        rates = [steps[name] / t for t in seconds]
        ratios = [rate * t_floor / args.updates for rate, t_floor in zip(rates, times["floor (39 GEMMs)"], strict=True)]
        results[name] = {"updates_per_s": round(statistics.median(rates), 1),
                         "x_floor": round(statistics.median(ratios), 3)}
        print(f"{name:36} {results[name]['updates_per_s']:>10.1f} {results[name]['x_floor']:>8.2f}")
    floor_mid = (floor_before + floor_after) / 2  # the Gymnasium loop ran between these two floor timings
    results["Gymnasium online loop (CartPole)"] = {"updates_per_s": round(gymnasium, 1),
                                                   "x_floor": round(gymnasium / floor_mid, 3)}
    print(f"{'Gymnasium online loop (CartPole)':36} {gymnasium:>10.1f} {gymnasium / floor_mid:>8.2f}   "
          f"(against the floor timed just before and after: {floor_before:.0f}, {floor_after:.0f})")
    compiled_x, gymnasium_x = (results[name]["x_floor"] for name in ("compiled loop (gymnax CartPole)",
                                                                      "Gymnasium online loop (CartPole)"))
    ratio = compiled_x / gymnasium_x
    print(f"compiled loop vs Gymnasium loop (floor-normalised): {ratio:.2f}x")
    json.dump(results, sys.stdout)
    print()


if __name__ == "__main__":
    main()
