"""How well FQE ranks policies where the truth is known (issue 10): CartPole-v1 and Acrobot-v1.

Per env: a short online run (its replay buffer is the OPE dataset), medium and random tiers
collected from it, and >= 20 policies trained across them (offline SAC/CQL at several CQL
weights and epochs, behaviour cloning, short online runs).  Each policy is estimated with FQE
on the replay data (``saclab.runs.fqe``) and run greedily for ``--episodes`` episodes for its
true discounted and undiscounted return.  Prints Spearman's rank correlation between estimates
and true returns, and the regret of deploying the top-ranked policy; writes
bench/results/ope_quality.{md,csv}.  Everything is cached in --out: a second call reuses it (each policy's
estimate and true returns in its run dir's ope_quality.json: delete those to re-estimate with other FQE settings).

    taskset -c 0 python bench/ope_quality.py                        # both envs, ~40-50 min on one core
    python bench/ope_quality.py --envs CartPole-v1 --out /tmp/ope
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from scipy.stats import spearmanr

from saclab.config import preset
from saclab.data.dataset import Dataset
from saclab.files import write_json, write_text
from saclab.runs.fqe import FQEConfig, fqe_evaluate, load_evaluated_policy, return_range
from saclab.runs.offline import train_offline
from saclab.runs.online import train_online
from saclab.runs.policy import Policy
from saclab.runs.tiers import collect_tier

RESULTS = Path(__file__).parent / "results"
ONLINE_STEPS = {"CartPole-v1": 10_000, "Acrobot-v1": 50_000}  # Acrobot: first greedy success at 16-27k
SHORT_ONLINE_STEPS = (2_000, 5_000)  # weaker online policies, for the spread
CQL_WEIGHTS = (0.0, 1.0, 5.0)
EPOCHS = (2, 10)
GAMMA = 0.99


def true_returns(policy: Policy, env_id: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(undiscounted, discounted) returns of ``episodes`` greedy episodes, stepped together (one policy call
    per step for all live episodes), each env reset with seed + i, capped at the env's registered limit."""
    envs = [gym.make(env_id) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    total, discounted = np.zeros(episodes), np.zeros(episodes)
    alive, t = np.ones(episodes, bool), 0
    while alive.any():
        live = np.flatnonzero(alive)
        actions = policy.act(obs[live])
        for i, action in zip(live, actions, strict=True):
            next_obs, reward, terminated, truncated, _ = envs[i].step(int(action))
            total[i] += reward
            discounted[i] += GAMMA ** t * reward
            obs[i] = next_obs
            alive[i] = not (terminated or truncated)
        t += 1
    for env in envs:
        env.close()
    return total, discounted


def make_policies(env_id: str, out: Path, tier_episodes: int) -> tuple[Path, dict[str, dict]]:
    """The OPE dataset (the online run's replay.h5) and the candidate run dirs with their labels."""
    base = preset("default").replace(env=env_id, eval_every_episodes=1000, eval_episodes=1)
    online = out / "online"
    candidates: dict[str, dict] = {}
    for steps, seed in ((ONLINE_STEPS[env_id], 0), *((s, i + 1) for i, s in enumerate(SHORT_ONLINE_STEPS))):
        run = online if seed == 0 else out / f"online-{steps}"
        if not (run / "result.json").exists():
            print(f"[{env_id}] online {steps} steps -> {run}", flush=True)
            train_online(base.replace(total_steps=steps), seed=seed, run_dir=run, progress=False, tensorboard=False,
                         save_replay=seed == 0)
        candidates[f"online {steps} steps"] = {"run": run, "data": "online", "algo": "sac", "cql": "", "epochs": ""}
    datasets = {"replay": online / "replay.h5"}
    for tier in ("medium", "random"):
        path = out / f"{tier}.h5"
        if not path.exists():
            print(f"[{env_id}] collecting the {tier} tier", flush=True)
            collect_tier(tier, checkpoint=online, episodes=tier_episodes, seed=0, calibration_episodes=20,
                         progress=False).save(path)
        datasets[tier] = path
    offline = base.replace(env="", validation_fraction=0.0)
    for name, path in datasets.items():
        data = Dataset.load(path)
        jobs = [(f"cql {w:g}", offline.replace(cql_weight=w, epochs=e), "sac", w, e)
                for w in CQL_WEIGHTS for e in EPOCHS] + [("bc", offline.replace(algo="bc", epochs=10), "bc", "", 10)]
        for label, config, algo, weight, epochs in jobs:
            run = out / name / (label.replace(" ", "-") + (f"-e{epochs}" if algo == "sac" else ""))
            if not (run / "result.json").exists():
                print(f"[{env_id}] {name}: {label}, {epochs} epochs", flush=True)
                train_offline(config, data, seed=0, run_dir=run, progress=False, tensorboard=False)
            candidates[f"{name}: {label}, {epochs} ep"] = {"run": run, "data": name, "algo": algo, "cql": weight,
                                                          "epochs": epochs}
    return datasets["replay"], candidates


def measure(env_id: str, out: Path, episodes: int, tier_episodes: int, fqe: FQEConfig) -> list[dict]:
    """One row per candidate policy: FQE estimate and CI, true returns (cached in each run dir)."""
    replay, candidates = make_policies(env_id, out, tier_episodes)
    data = Dataset.load(replay)
    low, high = return_range(data.rewards, fqe.gamma)
    rows = []
    for label, info in candidates.items():
        cache = info["run"] / "ope_quality.json"
        row = json.loads(cache.read_text()) if cache.exists() else None
        if row is None:
            started = time.perf_counter()
            estimate = fqe_evaluate(load_evaluated_policy(info["run"]), data, fqe)
            undiscounted, discounted = true_returns(Policy.load(info["run"], env=env_id), env_id, episodes, 10_000)
            row = {"env": env_id, "policy": label, **{k: info[k] for k in ("data", "algo", "cql", "epochs")},
                   "fqe_estimate": estimate.estimate, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high,
                   "true_discounted": float(discounted.mean()), "true_return": float(undiscounted.mean()),
                   "fqe_updates": estimate.updates, "seconds": round(time.perf_counter() - started, 1)}
            write_json(cache, row)
        row["diverged"] = not low <= row["fqe_estimate"] <= high  # saclab ope ranks these last
        print(f"[{env_id}] {label:28s} FQE {row['fqe_estimate']:8.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]  "
              f"true discounted {row['true_discounted']:8.2f}  return {row['true_return']:8.1f}", flush=True)
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    """Rank correlations and the regret of deploying the top-ranked policy, ranked as ``saclab ope --select``
    does (a diverged estimate, outside every return's range, last); also the raw estimates' correlation."""
    raw = np.array([r["fqe_estimate"] for r in rows])
    diverged = np.array([r["diverged"] for r in rows])
    estimate = raw if diverged.all() else np.where(diverged, raw[~diverged].min() - 1.0, raw)
    discounted = np.array([r["true_discounted"] for r in rows])
    returns = np.array([r["true_return"] for r in rows])
    chosen = int(np.argmax(estimate))
    regret = float(returns.max() - returns[chosen])
    discounted_regret = float(discounted.max() - discounted[chosen])
    return {"env": rows[0]["env"], "policies": len(rows),
            "spearman_discounted": float(spearmanr(estimate, discounted).statistic),
            "spearman_return": float(spearmanr(estimate, returns).statistic),
            "spearman_raw_discounted": float(spearmanr(raw, discounted).statistic), "diverged": int(diverged.sum()),
            "selected": rows[chosen]["policy"], "selected_return": float(returns[chosen]),
            "best_return": float(returns.max()), "regret": regret,
            "regret_pct_of_best": 100 * regret / abs(returns.max()) if returns.max() else float("nan"),
            "regret_pct_of_range": 100 * regret / (returns.max() - returns.min()) if np.ptp(returns) else 0.0,
            "discounted_regret_pct_of_best": 100 * discounted_regret / abs(discounted.max()) if discounted.max() else
            float("nan")}


def write_results(rows: list[dict], summaries: list[dict], fqe: FQEConfig, episodes: int) -> None:
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(RESULTS / "ope_quality.csv", table.getvalue())
    lines = ["# OPE quality: FQE estimates against true greedy returns", "",
             f"FQE on the online run's replay data: {fqe.updates} updates (batch {fqe.batch_size}, "
             f"hidden {fqe.hidden_sizes}, hard target copy every {fqe.target_update_every}, targets "
             f"{'clipped to the return range' if fqe.clip_targets else 'not clipped'}), gamma {fqe.gamma}; "
             f"true returns: {episodes} greedy episodes per policy.", "",
             "Ranked as `saclab ope --select` ranks: an estimate outside every return's range (FQE diverged) last; "
             "'raw': by the estimates as they are.", "",
             "| env | policies | diverged | Spearman (discounted) | Spearman (return) | Spearman raw (discounted) | "
             "selected | its return | best | regret | % of best | % of range | discounted regret, % of best |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s['env']} | {s['policies']} | {s['diverged']} | {s['spearman_discounted']:.2f} | "
              f"{s['spearman_return']:.2f} | {s['spearman_raw_discounted']:.2f} | "
              f"{s['selected']} | {s['selected_return']:.1f} | {s['best_return']:.1f} | {s['regret']:.1f} | "
              f"{s['regret_pct_of_best']:.1f} | {s['regret_pct_of_range']:.1f} | "
              f"{s['discounted_regret_pct_of_best']:.1f} |" for s in summaries]
    lines += ["", "| env | policy | FQE estimate | 95% CI | true discounted | true return |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['env']} | {r['policy']} | {r['fqe_estimate']:.2f} | [{r['ci_low']:.2f}, {r['ci_high']:.2f}] | "
              f"{r['true_discounted']:.2f} | {r['true_return']:.1f} |"
              for r in sorted(rows, key=lambda r: (r["env"], -r["fqe_estimate"]))]
    write_text(RESULTS / "ope_quality.md", "\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", default="CartPole-v1,Acrobot-v1")
    p.add_argument("--out", default="/tmp/saclab-ope-quality", help="cache of runs, datasets and results")
    p.add_argument("--episodes", type=int, default=100, help="greedy episodes per policy for its true return")
    p.add_argument("--tier-episodes", type=int, default=50)
    p.add_argument("--fqe-updates", type=int, default=0, help="0: FQEConfig's schedule for gamma")
    args = p.parse_args()
    fqe = FQEConfig(min_updates=args.fqe_updates, gamma=GAMMA)
    rows, summaries = [], []
    for env_id in args.envs.split(","):
        env_rows = measure(env_id, Path(args.out) / env_id, args.episodes, args.tier_episodes, fqe)
        rows += env_rows
        summaries.append(summary(env_rows))
        print(json.dumps(summaries[-1], indent=1), flush=True)
        write_results(rows, summaries, fqe, args.episodes)  # after each env: a partial result survives a time box


if __name__ == "__main__":
    main()
