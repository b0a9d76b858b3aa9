"""The anchor, measured: Stable-Baselines3's DQN with the RL Zoo's tuned hyperparameters, over seeds.

The issue-8 targets compare saclab's median over 5 seeds with the RL Zoo's single DQN run per env
(benchmark.md).  This trains the zoo's own configuration on several seeds, at the zoo's budget,
and evaluates each run as ``bench/learning.py`` evaluates saclab's: the greedy (deterministic)
policy over 100 episodes (episode i reset with seed 10,000 + seed + i: the same start-state
distribution as saclab's evaluation, not the same states).  It needs PyTorch and Stable-Baselines3, which
saclab does not, so it runs in a venv of its own (the CPU build of torch on this machine):

    python3 -m venv /tmp/sb3 && /tmp/sb3/bin/pip install torch==2.13.0 stable-baselines3 "gymnasium[box2d]"
    taskset -c 0 /tmp/sb3/bin/python bench/anchor_dqn.py run --env Acrobot-v1 --seeds 0 2 4 --csv runs/anchor-a.csv
    taskset -c 1 /tmp/sb3/bin/python bench/anchor_dqn.py run --env Acrobot-v1 --seeds 1 3 --csv runs/anchor-b.csv
    python bench/anchor_dqn.py table runs/anchor-a.csv runs/anchor-b.csv   # saclab's venv: IQM and CI

Hyperparameters: DLR-RM/rl-baselines3-zoo, hyperparams/dqn.yml, the "Tuned" entries whose
``n_timesteps`` is benchmark.md's budget (Acrobot-v1 100k: -76.639 +/- 11.752 over 1932 episodes
of one run; LunarLander-v2 100k: 154.4; MountainCar-v0 120k: -100.8).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

FINAL_EPISODES = 100  # as bench/learning.py
_ZOO_SMALL_TASKS = dict(  # the zoo's tuned Acrobot-v1 and LunarLander-v2 entries are the same
    total_timesteps=100_000, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0,
    gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12,
    exploration_final_eps=0.1, net_arch=[256, 256])
ZOO_DQN = {
    "Acrobot-v1": _ZOO_SMALL_TASKS,
    "LunarLander-v3": _ZOO_SMALL_TASKS,  # the zoo ran v2; v3 has the same dynamics with bug fixes
    "MountainCar-v0": dict(
        total_timesteps=120_000, learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000,
        gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8, exploration_fraction=0.2,
        exploration_final_eps=0.07, net_arch=[256, 256]),
}
FIELDS = ("env", "seed", "steps", "final_return", "final_std", "train_s")


def train_and_evaluate(env_id: str, seed: int, steps: int = 0) -> dict:
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import DQN

    torch.set_num_threads(1)
    hp = dict(ZOO_DQN[env_id])
    budget, net_arch = hp.pop("total_timesteps"), hp.pop("net_arch")
    steps = steps or budget
    model = DQN("MlpPolicy", env_id, seed=seed, policy_kwargs={"net_arch": net_arch}, verbose=0, **hp)
    started = time.perf_counter()
    model.learn(total_timesteps=steps)
    train_s = time.perf_counter() - started
    env = gym.make(env_id)
    returns = []
    for episode in range(FINAL_EPISODES):
        obs, _ = env.reset(seed=10_000 + seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return {"env": env_id, "seed": seed, "steps": steps, "final_return": float(np.mean(returns)),
            "final_std": float(np.std(returns)), "train_s": round(train_s, 1)}


def run(args: argparse.Namespace) -> None:
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["env"], int(r["seed"])) for r in csv.DictReader(path.open())} if path.exists() else set()
    for seed in args.seeds:
        if (args.env, seed) in done:
            continue
        row = train_and_evaluate(args.env, seed, args.steps)
        new = not path.exists()
        with path.open("a", newline="") as f:  # one row per finished run: a crash loses only the run in flight
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(row, flush=True)


def table(args: argparse.Namespace) -> None:
    import numpy as np

    from saclab.analysis.stats import interval_estimates

    rows = [r for p in args.csv for r in csv.DictReader(open(p))]
    print("| env | steps | seeds | per seed | median | IQM [95% CI] | min / max |")
    print("|---|---|---|---|---|---|---|")
    for env in sorted({r["env"] for r in rows}):
        runs = sorted((r for r in rows if r["env"] == env), key=lambda r: int(r["seed"]))
        finals = np.array([float(r["final_return"]) for r in runs])
        est = interval_estimates(finals)
        print(f"| {env} | {int(runs[0]['steps']) // 1000}k | {len(runs)} | "
              f"{' / '.join(f'{v:.1f}' for v in finals)} | {np.median(finals):.1f} | {est['iqm']:.1f} "
              f"[{est['iqm_ci'][0]:.1f}, {est['iqm_ci'][1]:.1f}] | {finals.min():.1f} / {finals.max():.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and evaluate (needs torch and stable-baselines3)")
    r.add_argument("--env", choices=sorted(ZOO_DQN), default="Acrobot-v1")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--steps", type=int, default=0, help="budget (0: the zoo's)")
    r.add_argument("--csv", required=True, help="appended, one row per finished run; finished seeds are skipped")
    t = sub.add_parser("table", help="median, IQM and 95%% CI of CSVs written by run (needs saclab)")
    t.add_argument("csv", nargs="+")
    args = p.parse_args()
    if args.command == "run":
        run(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
