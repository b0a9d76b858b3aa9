"""Parallel scaling of sweeps: 8 equal online runs on 1 vs 2 worker processes, and Ray vs local.

Each measurement runs in a fresh interpreter with one XLA/BLAS thread
(``runtime.single_thread_environment``) and times ``run_jobs`` from the
first job to the last outcome: imports, compilation (from a warmed
persistent cache), process start-up and training all count.  Every run is
the same online budget with different seeds (evaluation only at the end,
so the work per run does not depend on what it learns).

Prints the wall times and two ratios measured in this one invocation:

* speed-up = t(1 worker) / t(2 workers)       target >= 1.8 on 2 idle cores;
* Ray overhead = t(ray, local instance with 2 CPUs) / t(local, 2 workers), Ray start-up included.

    python bench/scaling.py                       # 8 runs x 3000 steps, default preset (~3 min on 2 cores)
    python bench/scaling.py --steps 1000 --skip-ray
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
from saclab.config import SACConfig
from saclab.launch.jobs import seed_jobs
from saclab.launch.pool import run_jobs
spec = json.loads(sys.argv[1])
config = SACConfig.from_dict(spec["config"])
jobs = seed_jobs("online", config, range(spec["runs"]), spec["out"])
started = time.perf_counter()
if spec["backend"] == "ray":  # a local instance with as many CPUs as the local pool has workers
    import ray
    ray.init(num_cpus=spec["workers"], include_dashboard=False, logging_level="ERROR")
outcomes = run_jobs(jobs, spec["backend"], workers=spec["workers"])
wall = time.perf_counter() - started
if spec["backend"] == "ray":
    ray.shutdown()
failed = [o.error for o in outcomes if not o.ok]
print(json.dumps({"wall_s": wall, "failed": failed}))
"""


def timed(config: dict, runs: int, out: Path, backend: str, workers: int) -> float:
    """Wall time of ``runs`` seeds of ``config`` on ``backend``, measured in a fresh interpreter."""
    from saclab.runtime import single_thread_environment

    spec = {"config": config, "runs": runs, "out": str(out), "backend": backend, "workers": workers}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True,
                          env=single_thread_environment())
    if proc.returncode != 0:
        sys.exit(f"{backend} x{workers} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["failed"]:
        sys.exit(f"{backend} x{workers}: runs failed: {result['failed'][0]}")
    return float(result["wall_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--steps", type=int, default=3000, help="environment steps per run")
    p.add_argument("--workers", type=int, default=2, help="the parallel case's worker processes")
    p.add_argument("--skip-ray", action="store_true")
    args = p.parse_args()

    from saclab.config import preset

    config = preset(args.preset).replace(total_steps=args.steps, total_episodes=0, checkpoint_every_steps=0,
                                         eval_every_episodes=10**6, eval_episodes=5).to_dict()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.runs} online runs x {args.steps} steps, preset {args.preset}; {cores} cores available; "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="saclab-scaling-") as tmp:
        root = Path(tmp)
        warm = timed({**config, "total_steps": 300}, 1, root / "warm", "local", 1)  # fills the compile cache
        print(f"warm-up (compile cache): {warm:.1f} s")
        t1 = timed(config, args.runs, root / "one", "local", 1)
        print(f"local, 1 worker:  {t1:7.1f} s")
        t2 = timed(config, args.runs, root / "two", "local", args.workers)
        print(f"local, {args.workers} workers: {t2:7.1f} s")
        tr = None
        if not args.skip_ray:
            try:
                import ray  # noqa: F401
            except ImportError:
                print("ray: not installed (pip install 'saclab[ray]'), skipped")
            else:
                tr = timed(config, args.runs, root / "ray", "ray", args.workers)
                print(f"ray, local instance: {tr:7.1f} s")
    results = {"runs": args.runs, "steps": args.steps, "preset": args.preset, "cores": cores,
               "t_1_worker_s": round(t1, 2), f"t_{args.workers}_workers_s": round(t2, 2),
               "speedup": round(t1 / t2, 2)}
    print(f"speed-up 1 -> {args.workers} workers: {t1 / t2:.2f}x (target >= 1.8x on {args.workers} idle cores)")
    if tr is not None:
        results.update({"t_ray_s": round(tr, 2), "ray_overhead": round(tr / t2, 2)})
        print(f"Ray / local ({args.workers} workers): {tr / t2:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(bench wall time {time.perf_counter() - started:.0f} s)", file=sys.stderr)
