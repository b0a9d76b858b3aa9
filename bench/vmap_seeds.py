"""Seeds vmapped into one compiled loop (``saclab train --vmap``) against one seed at a time, in one run.

For each S in --seeds-list, S seeds' loop states are stacked and ``runs.compiled.run_chunk_seeds``
runs --chunk env steps of all of them per call (each step: S actions, S gymnax steps, S buffer
writes, S minibatch gathers and S updates).  S = 1 is the unbatched ``run_chunk``, as
``saclab train`` runs one seed.  Printed: env steps per second per seed and in all, and the
speed-up over S separate runs one after the other (total rate over the S = 1 rate).  On a GPU a
small network leaves the device mostly idle, so S seeds cost little more than one; on one CPU
core the work is S times larger and the speed-up is about 1.

    python bench/vmap_seeds.py --env gymnax:Breakout-MinAtar --preset default --seeds-list 1 4 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax

from saclab.config import preset
from saclab.core.agent import Learner
from saclab.envs.gymnax_envs import make_gymnax
from saclab.runs.compiled import LoopSettings, init_loop, run_chunk, run_chunk_seeds
from saclab.runs.run import stack_seeds
from saclab.runtime import enable_compilation_cache


def chunk_call(env_id: str, preset_name: str, seeds: int, chunk: int, buffer_size: int):
    """A call that runs ``chunk`` steps of ``seeds`` stacked loops (each call continues the last);
    warmed up past learning_starts, so every timed step updates."""
    config = preset(preset_name).replace(env=env_id, buffer_size=buffer_size, total_episodes=0, total_steps=chunk)
    env, env_params, spec = make_gymnax(env_id, config.max_episode_steps)
    learner = Learner.from_config(config, spec)
    settings = LoopSettings(config.batch_size, config.learning_starts, config.updates_per_call,
                            config.truncation_is_terminal)
    loops = [init_loop(learner, env, env_params, config, s, spec.obs_dtype) for s in range(seeds)]
    loop = stack_seeds(loops) if seeds > 1 else loops[0]
    step = run_chunk_seeds if seeds > 1 else run_chunk

    def call():
        nonlocal loop
        loop, finished = step(learner, settings, env, chunk, env_params, loop)
        return finished

    for _ in range(max(1, -(-config.learning_starts // chunk))):
        jax.block_until_ready(call())  # compiles, then fills the buffers past learning_starts
    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="gymnax:CartPole-v1")
    p.add_argument("--preset", default="default")
    p.add_argument("--seeds-list", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--chunk", type=int, default=1000, help="env steps per compiled call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--buffer-size", type=int, default=100_000)
    p.add_argument("--json", default="", help="also write the rows to this file")
    args = p.parse_args()
    enable_compilation_cache()
    calls = {s: chunk_call(args.env, args.preset, s, args.chunk, args.buffer_size) for s in args.seeds_list}
    times: dict[int, list[float]] = {s: [] for s in calls}
    for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits every row alike
        for s, call in calls.items():
            started = time.perf_counter()
            jax.block_until_ready(call())
            times[s].append(time.perf_counter() - started)
    print(f"{args.env}, preset {args.preset}, device {jax.devices()[0].device_kind}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, {args.chunk} steps per call, median of {args.repeats}")
    print(f"{'seeds':>5} {'steps/s per seed':>17} {'steps/s in all':>15} {'vs separate runs':>17}")
    rows = []
    base = args.chunk / statistics.median(times[min(calls)]) if min(calls) == 1 else None
    for s, seconds in times.items():
        per_seed = args.chunk / statistics.median(seconds)
        speedup = per_seed * s / base if base else float("nan")
        rows.append({"seeds": s, "steps_per_s_per_seed": round(per_seed, 1), "steps_per_s": round(per_seed * s, 1),
                     "vs_separate": round(speedup, 2)})
        print(f"{s:>5} {per_seed:>17.1f} {per_seed * s:>15.1f} {speedup:>16.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": args.env, "preset": args.preset, "device": jax.devices()[0].device_kind,
                       "rows": rows}, f)


if __name__ == "__main__":
    main()
