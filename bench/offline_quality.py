"""Offline quality over seeds: offline SAC (CQL weight 0) and CQL (weight 5) on the replay
dataset of an online run and on expert and medium tiers collected from it.

Prints, per dataset and weight: final and best greedy return (mean, IQM, 95% bootstrap CI
over seeds), the final mean Q on dataset actions and on greedy actions against the data's
Monte Carlo return, and how many runs raised the overestimation alarm (Q > r_max/(1-gamma)).

    python bench/offline_quality.py --seeds 5 --epochs 40             # trains its own online run
    python bench/offline_quality.py --online runs/sac/seed-0 --seeds 5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from saclab.analysis.stats import summarize_group
from saclab.config import preset
from saclab.launch.jobs import Job
from saclab.launch.pool import run_jobs
from saclab.runs.online import train_online
from saclab.runs.tiers import collect_tier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--online", default=None, help="a finished online run (default: train one, 20k steps)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--tier-episodes", type=int, default=100)
    p.add_argument("--out", default=None)
    p.add_argument("--workers", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="saclab-offline-quality-"))
    base = preset("default").replace(max_episode_steps=200, offline_eval_episodes=args.eval_episodes,
                                     epochs=args.epochs)
    online = Path(args.online) if args.online else out / "online"
    if args.online is None and not (online / "result.json").exists():
        train_online(base.replace(total_steps=20_000, eval_every_episodes=10), seed=0, run_dir=online,
                     progress=False)
    datasets = {"replay": online / "replay.h5"}
    for tier in ("expert", "medium"):
        path = out / f"{tier}.h5"
        if not path.exists():
            collect_tier(tier, checkpoint=online, episodes=args.tier_episodes, seed=0, max_episode_steps=200,
                         progress=False).save(path)
        datasets[tier] = path
    jobs, groups = [], {}
    for name, path in datasets.items():
        for weight in (0.0, 5.0):
            label = f"{name}, cql {weight:g}"
            for seed in range(args.seeds):
                run_dir = out / name / f"cql_weight={weight:g}" / f"seed-{seed}"
                jobs.append(Job("offline", base.replace(cql_weight=weight), seed, str(run_dir), str(path)))
                groups.setdefault(label, []).append(str(run_dir))
    failed = [o for o in run_jobs(jobs, workers=args.workers or None) if not o.ok]
    for o in failed:
        print(f"FAILED {o.job.run_dir}: {o.error}")
    print(f"{args.seeds} seeds x {args.epochs} epochs, {args.eval_episodes} evaluation episodes, 200-step cap -> {out}")
    print(f"{'dataset, weight':18} {'final mean':>10} {'final IQM [95% CI]':>24} {'best IQM':>9} "
          f"{'Q data':>8} {'Q greedy':>9} {'MC':>6} {'alarms':>7}")
    for label, runs in groups.items():
        g = summarize_group(runs, label)
        f, b = g["final"], g["best"]
        print(f"{label:18} {f['mean']:>10.1f} {f['iqm']:>8.1f} [{f['iqm_ci'][0]:6.1f}, {f['iqm_ci'][1]:6.1f}] "
              f"{b['iqm']:>9.1f} {g['q_data']:>8.1f} {g['q_greedy']:>9.1f} {g['mc_return']:>6.1f} "
              f"{g['overestimated_runs']:>4}/{g['n']}")


if __name__ == "__main__":
    main()
