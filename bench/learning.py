"""Sample efficiency and stability of a preset on CartPole-v1 (500-step cap), over seeds.

For each seed: environment steps until the greedy evaluation mean first reaches
the threshold (475), and the evaluation returns over the rest of the run
(mean and minimum: a collapse shows as a low minimum).  Prints a table and
the medians; runs one single-threaded process per worker.

    python bench/learning.py --preset default --seeds 5 --total-steps 100000
    python bench/learning.py --set target_entropy_ratio=0.5 --seeds 3 --total-steps 30000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from saclab.config import SACConfig, preset
from saclab.launch.jobs import seed_jobs
from saclab.launch.pool import run_jobs
from saclab.runs.runlog import read_evaluations


def parse_set(items: list[str], base: SACConfig) -> SACConfig:
    changes = {}
    types = {k: type(v) for k, v in base.to_dict().items()}
    for item in items:
        key, value = item.split("=", 1)
        if types[key] is bool:
            changes[key] = value.lower() in ("1", "true", "yes")
        elif types[key] is tuple:
            changes[key] = tuple(int(v) for v in value.split("x"))
        else:
            changes[key] = types[key](value)
    return base.replace(**changes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--set", nargs="*", default=[], help="field=value overrides (hidden_sizes as 128x128)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--total-steps", type=int, default=100_000)
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    args = p.parse_args()

    config = parse_set(args.set, preset(args.preset)).replace(
        total_steps=args.total_steps, total_episodes=0, max_episode_steps=500, checkpoint_every_steps=0)
    out = Path(args.out or tempfile.mkdtemp(prefix="saclab-learning-"))
    outcomes = run_jobs(seed_jobs("online", config, range(args.seeds), out), workers=args.workers or None)
    rows = []
    for o in outcomes:
        if not o.ok:
            print(f"seed {o.job.seed}: FAILED {o.error}")
            continue
        evals = read_evaluations(o.job.run_dir)
        hit = next((r["step"] for r in evals if r["return_mean"] >= args.threshold), None)
        after = [r["return_mean"] for r in evals if hit is not None and r["step"] >= hit]
        rows.append({"seed": o.job.seed, "steps_to_threshold": hit,
                     "mean_after": statistics.fmean(after) if after else None,
                     "min_after": min(after) if after else None,
                     "final": evals[-1]["return_mean"], "steps_per_s": o.summary["steps_per_s"]})
    print(f"config: preset={args.preset} {' '.join(args.set)} total_steps={args.total_steps} -> {out}")
    print(f"{'seed':>4} {'steps to ' + str(int(args.threshold)):>14} {'mean after':>10} {'min after':>9} "
          f"{'final':>6} {'steps/s':>8}")
    for r in rows:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"{r['seed']:>4} {fmt(r['steps_to_threshold'], 'd'):>14} {fmt(r['mean_after'], '.1f'):>10} "
              f"{fmt(r['min_after'], '.1f'):>9} {r['final']:>6.1f} {r['steps_per_s']:>8.1f}")
    hits = [r["steps_to_threshold"] for r in rows if r["steps_to_threshold"] is not None]
    never = len(rows) - len(hits)
    # Seeds that never reach the threshold count as the whole budget (an upper bound) in the median.
    median = statistics.median(hits + [args.total_steps] * never) if rows else None
    summary = {"median_steps_to_threshold": median, "seeds_reaching": f"{len(hits)}/{len(rows)}",
               "median_final": statistics.median(r["final"] for r in rows) if rows else None,
               "median_min_after": statistics.median(r["min_after"] for r in rows if r["min_after"] is not None)
               if hits else None}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
