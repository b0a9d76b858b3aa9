"""Learning benchmark: a preset on the classic discrete tasks over seeds, against the RL Zoo's tuned DQN.

For each env, one online run per seed (one single-threaded process per worker)
at the RL Zoo's budget, then a final greedy evaluation of 100 episodes per run.
Prints, per env: the median and the IQM with its 95% bootstrap CI of the final
returns beside the anchor, and the stability of the temperature and the
critic (alpha's growth over the second half of the run; the largest mean Q
against the soft-value bound).  Writes the raw per-run numbers (CSV), the
table (Markdown) and the curves (PNG) under ``--results``.  Runs that already
finished in ``--out`` are reused, so a second call only re-reads them.

    python bench/learning.py --seeds 5                                   # the four envs at the zoo's budgets
    python bench/learning.py --env LunarLander-v3 --steps 300000 --seeds 2 --tag long
    python bench/learning.py --env Acrobot-v1 --set entropy_backup=true --tag soft-q

Anchor: DLR-RM/rl-baselines3-zoo, benchmark.md, "Performance of trained agents":
DQN with per-env tuned hyperparameters, one run each, deterministic policy
(LunarLander there is v2; v3 has the same dynamics with bug fixes).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

from saclab.analysis.plots import plot_curves
from saclab.analysis.stats import interval_estimates
from saclab.config import SACConfig, preset
from saclab.core.losses import soft_value_bound
from saclab.data.dataset import Dataset
from saclab.envs.make import env_spec, registered_episode_limit
from saclab.launch.grid import parse_value
from saclab.launch.jobs import seed_jobs
from saclab.launch.pool import run_jobs
from saclab.runs.policy import Policy
from saclab.runs.runlog import read_evaluations, read_metrics

# env: (zoo budget, zoo DQN, zoo QR-DQN, saclab's target for the median final return)
ANCHORS = {
    "CartPole-v1": (50_000, 500.0, 500.0, 500.0),
    "Acrobot-v1": (100_000, -76.6, -69.1, -75.0),
    "LunarLander-v3": (100_000, 154.4, 70.0, 150.0),
    "MountainCar-v0": (120_000, -100.8, -106.0, -110.0),
}
FINAL_EPISODES = 100
FIELDS = ("env", "seed", "steps", "final_return", "final_std", "best_eval", "reached_threshold_at",
          "min_after_threshold", "alpha_mid", "alpha_final", "alpha_max", "alpha_growth_2nd_half",
          "q_max", "q_bound_at_q_max", "q_over_bound", "steps_per_s")


def env_config(base: SACConfig, env: str, steps: int) -> SACConfig:
    limit = registered_episode_limit(env) or base.max_episode_steps  # an unregistered id: the config's cap
    return base.replace(env=env, total_steps=steps, total_episodes=0, max_episode_steps=limit,
                        checkpoint_every_steps=25_000)


def run_row(env: str, seed: int, run_dir: Path, config: SACConfig, threshold: float | None) -> dict:
    evaluations = read_evaluations(run_dir)
    metrics = [m for m in read_metrics(run_dir) if "alpha" in m]
    policy = Policy.load(run_dir, env=env)  # the id from the command line (it may name a module)
    final = policy.evaluate(FINAL_EPISODES, seed=10_000 + seed)
    replay = Dataset.load(run_dir / "replay.h5")
    r_max = float(np.max(replay.rewards))
    num_actions = env_spec(env).num_actions
    bounds = [soft_value_bound(r_max, m["alpha"], num_actions, config.gamma, config.entropy_backup) for m in metrics]
    q = [m["q_data"] for m in metrics]
    worst = int(np.argmax(np.asarray(q) - np.asarray(bounds)))
    alphas = [m["alpha"] for m in metrics]
    half = len(alphas) // 2
    hit = next((e["step"] for e in evaluations if threshold is not None and e["return_mean"] >= threshold), None)
    after = [e["return_mean"] for e in evaluations if hit is not None and e["step"] >= hit]
    result = json.loads((run_dir / "result.json").read_text())
    return {"env": env, "seed": seed, "steps": config.total_steps, "final_return": float(np.mean(final)),
            "final_std": float(np.std(final)), "best_eval": max(e["return_mean"] for e in evaluations),
            "reached_threshold_at": hit, "min_after_threshold": min(after) if after else None,
            "alpha_mid": alphas[half], "alpha_final": alphas[-1], "alpha_max": max(alphas),
            "alpha_growth_2nd_half": alphas[-1] / alphas[half], "q_max": max(q),
            "q_bound_at_q_max": bounds[worst], "q_over_bound": bool(q[worst] > bounds[worst]),
            "steps_per_s": result.get("steps_per_s")}


def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table(rows_by_env: dict[str, list[dict]], label: str) -> str:
    lines = [f"`{label}`, final greedy return over {FINAL_EPISODES} episodes per run:", "",
             "| env | steps | seeds | RL Zoo DQN | target | median | IQM [95% CI] | min / max | "
             "alpha mid → final (max) | max Q / bound | met |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for env, rows in rows_by_env.items():
        finals = np.array([r["final_return"] for r in rows])
        est = interval_estimates(finals)
        budget, dqn, _, target = ANCHORS.get(env, (None, math.nan, math.nan, None))
        median = float(np.median(finals))
        met = "-" if target is None or rows[0]["steps"] != budget else ("yes" if median >= target else "no")
        alpha_mid = np.median([r["alpha_mid"] for r in rows])
        alpha_final = np.median([r["alpha_final"] for r in rows])
        alpha_max = max(r["alpha_max"] for r in rows)
        q_worst = max(rows, key=lambda r: r["q_max"] - r["q_bound_at_q_max"])
        lines.append(
            f"| {env} | {rows[0]['steps'] // 1000}k | {len(rows)} | {fmt(dqn)} | {fmt(target)} | {median:.1f} | "
            f"{est['iqm']:.1f} [{fmt(est['iqm_ci'][0])}, {fmt(est['iqm_ci'][1])}] | {finals.min():.1f} / "
            f"{finals.max():.1f} | {alpha_mid:.3g} → {alpha_final:.3g} ({alpha_max:.3g}) | "
            f"{q_worst['q_max']:.1f} / {q_worst['q_bound_at_q_max']:.1f} | {met} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", nargs="+", default=list(ANCHORS))
    p.add_argument("--preset", default="default")
    p.add_argument("--set", nargs="*", default=[], help="config overrides, field=value")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="budget per env (0 = the RL Zoo's)")
    p.add_argument("--workers", type=int, default=0, help="parallel processes (0 = one per core)")
    p.add_argument("--out", default="runs/bench-learning", help="run directories (reused when finished)")
    p.add_argument("--results", default="bench/results", help="where the CSV, table and curves go")
    p.add_argument("--tag", default="default")
    args = p.parse_args()

    base = preset(args.preset)
    base = base.replace(**{k: parse_value(k, v) for k, v in (item.split("=", 1) for item in args.set)})
    configs = {env: env_config(base, env, args.steps or ANCHORS[env][0]) for env in args.env}
    out = Path(args.out) / args.tag
    jobs = [job for env, config in configs.items() for job in seed_jobs("online", config, range(args.seeds), out / env)]
    failed = [o for o in run_jobs(jobs, workers=args.workers or None) if not o.ok]
    for o in failed:
        print(f"{o.job.run_dir}: FAILED {o.error}")

    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    rows_by_env: dict[str, list[dict]] = {}
    for env, config in configs.items():
        threshold = 475.0 if env == "CartPole-v1" else None
        runs = [out / env / f"seed-{s}" for s in range(args.seeds)]
        rows_by_env[env] = [run_row(env, s, r, config, threshold) for s, r in enumerate(runs)
                            if (r / "result.json").exists()]
        plot_curves({f"saclab {args.tag}": runs}, results / f"learning-{args.tag}-{env}.png",
                    x="step", title=f"{env}: greedy return (10 episodes), mean and 95% CI; dotted: RL Zoo DQN",
                    hline=ANCHORS[env][1] if env in ANCHORS else None)
    with open(results / f"learning-{args.tag}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for rows in rows_by_env.values():
            writer.writerows(rows)
    label = " ".join([f"--preset {args.preset}", *(f"--set {s}" for s in args.set)])
    text = table({env: rows for env, rows in rows_by_env.items() if rows}, label)
    (results / f"learning-{args.tag}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
