"""The study report's verdicts, on run files written by hand (no training): for each of the
notebook's three questions, every case the measurements can fall in picks its own sentence; a
study on another env (Acrobot-like: negative returns, 3 actions) reads without CartPole text."""

import json
import math

import numpy as np
import pytest

from saclab.analysis.report import render_markdown, report_numbers, write_report
from saclab.analysis.verdicts import relation
from saclab.config import preset
from saclab.data.dataset import Dataset
from saclab.launch.plan import StudyPlan, plan_study
from saclab.launch.study import write_plan
from saclab.runs.runlog import write_result

GAMMA = 0.99


def critic_stub(q_data=60.0, q_greedy=62.0, mc_return=64.0):
    """Stands in for loading an online checkpoint (``analysis.critic``): fixed critic numbers."""
    return lambda run, gamma: {"q_data": q_data, "q_greedy": q_greedy, "mc_return": mc_return}


def plan_for(env="CartPole-v1", cap=200, offline_seeds=(0, 1, 2), entropy_backup=True) -> StudyPlan:
    base = preset("test").replace(env=env, max_episode_steps=cap, gamma=GAMMA, entropy_backup=entropy_backup)
    return StudyPlan("test", True, base.replace(total_steps=1000), base.replace(epochs=2),
                     online_seeds=(0, 1, 2), offline_seeds=offline_seeds, tiers=("expert",), tier_episodes=4,
                     tier_seeds=(0,), tier_epochs=2, sweep_weights=(0.0, 5.0, 50.0), sweep_seeds=(0, 1),
                     sweep_epochs=2)


def write_dataset(path, episode_rewards, num_actions, env):
    """A dataset of episodes with the given per-step rewards (each episode ends in a termination)."""
    rewards = np.concatenate(episode_rewards)
    n = len(rewards)
    starts = np.zeros(n, bool)
    ends = np.zeros(n, bool)
    lengths = np.cumsum([len(e) for e in episode_rewards])
    starts[np.r_[0, lengths[:-1]]] = True
    ends[lengths - 1] = True
    obs = np.random.default_rng(0).normal(size=(n, 4))
    Dataset(obs, np.arange(n) % num_actions, rewards, obs, ends, np.zeros(n, bool), starts,
            metadata={"env_id": env, "num_actions": num_actions}).save(path)


def write_run(run, kind, returns, alpha, q=None, cql_weight=0.0):
    """A finished run's files: config.json, evaluations.csv (one row per return), metrics.jsonl, result.json."""
    run.mkdir(parents=True, exist_ok=True)  # an online run's folder already holds its replay.h5
    (run / "config.json").write_text(json.dumps({"kind": kind, "config": {"cql_weight": cql_weight,
                                                                          "total_steps": 1000}}))
    x = "epoch" if kind == "offline" else "step"
    header = [x, "return_mean"] + (["q_data", "q_greedy", "mc_return", "q_bound", "overestimated"] if q else [])
    rows = [",".join(header)]
    for i, r in enumerate(returns):
        extra = [q["q_data"], q["q_greedy"], q["mc_return"], 100.0, q["q_greedy"] > 100.0] if q else []
        rows.append(",".join(str(v) for v in [i + 1, r, *extra]))
    (run / "evaluations.csv").write_text("\n".join(rows) + "\n")
    (run / "metrics.jsonl").write_text(json.dumps({"step": len(returns), "alpha": alpha}) + "\n")
    write_result(run, {"final_return": returns[-1], "best_return": max(returns), "evaluations": len(returns)})


# the measurements of a CartPole-like study, group by group: final return per seed, critic, alpha
BASE = {
    "online": {"finals": [180.0, 190.0, 200.0], "alpha": 0.01},
    "replay/sac": {"finals": [170.0, 185.0, 200.0], "q_data": 60.0, "q_greedy": 62.0, "mc_return": 64.0, "alpha": 0.01},
    "replay/cql": {"finals": [160.0, 180.0, 195.0], "q_data": 55.0, "q_greedy": 56.0, "mc_return": 64.0, "alpha": 0.01},
    "expert/sac": {"finals": [150.0], "q_data": 40.0, "q_greedy": 90.0, "mc_return": 50.0, "alpha": 0.01},
    "expert/cql": {"finals": [140.0], "q_data": 38.0, "q_greedy": 40.0, "mc_return": 50.0, "alpha": 0.01},
    "sweep/50": {"finals": [120.0, 130.0], "q_data": 20.0, "q_greedy": 21.0, "mc_return": 64.0, "alpha": 0.01},
    "replay/bc": {"finals": [150.0, 170.0, 190.0], "alpha": 0.01},  # behaviour cloning: no critic
    "expert/bc": {"finals": [130.0], "alpha": 0.01},
}


def craft_study(out, changes=None, plan=None, episode_rewards=None, num_actions=2):
    """Write study.json (as ``saclab study`` does), the datasets, and every run's files."""
    plan = plan or plan_for()
    spec = {name: dict(values) for name, values in BASE.items()}
    for name, values in (changes or {}).items():
        spec[name].update(values)
    write_plan(plan, out)
    study = json.loads((out / "study.json").read_text())
    for _, path in study["datasets"]:
        write_dataset(out / path, episode_rewards or [np.ones(20), np.ones(30)], num_actions, plan.env)
    for name, runs in study["groups"]:
        # sweep/0 and sweep/5 train what replay/sac and replay/cql do: the same runs, or the same values
        values = spec.get(name) or spec[{"sweep/0": "replay/sac", "sweep/5": "replay/cql"}[name]]
        for i, run in enumerate(runs):
            if (out / run / "config.json").exists():
                continue
            q = {k: values.get(k, 0.0) for k in ("q_data", "q_greedy", "mc_return")} if name != "online" else None
            final = values["finals"][i % len(values["finals"])]
            write_run(out / run, "online" if name == "online" else "offline", [final - 10.0, final],
                      values["alpha"], q, cql_weight=5.0 if "cql" in name else 0.0)
    return out


def report_text(tmp_path, changes=None, critic=None, **kwargs):
    out = craft_study(tmp_path / "study", changes, **kwargs)
    numbers = report_numbers(out, online_critic=critic or critic_stub())
    return numbers, render_markdown(numbers, figures={})


# ---------------------------------------------------------------------------------------
# Q1: why online and offline differ
# ---------------------------------------------------------------------------------------
def test_q1_matching_returns_within_the_bound(tmp_path):
    numbers, text = report_text(tmp_path)
    assert numbers["verdicts"]["q1"]["regime"] == "matches_online"
    assert "On these replay buffers offline SAC does about as well as the online agent" in text
    assert "exceed what any policy can earn" not in text
    assert "Its critic is still far from" not in text  # 60 of a Monte Carlo return of 64: converged
    assert "These are soft values" not in text  # alpha 0.01: the entropy bonus is negligible
    # the expert tier comes from the online run with the highest final return
    assert "where the online agent that produced the data scores 200.0" in text


def test_q1_divergence_when_values_exceed_the_soft_bound(tmp_path):
    numbers, text = report_text(tmp_path, {"replay/sac": {"q_greedy": 450.0, "q_data": 300.0}})
    assert numbers["verdicts"]["q1"]["regime"] == "overestimated"
    assert "**Offline SAC's values exceed what any policy can earn**: with no new data to correct them" in text
    assert "no value on CartPole-v1 can exceed r_max/(1-γ) = 100.0" in text


def test_q1_soft_values_raise_the_bound(tmp_path):
    # alpha 0.5: the soft bound is (1 + 0.5 log 2) / 0.01 = 134.7, so Q = 120 is not a divergence
    numbers, text = report_text(tmp_path, {"replay/sac": {"q_greedy": 120.0, "q_data": 118.0, "alpha": 0.5}})
    assert numbers["verdicts"]["q1"]["soft_bound"] == pytest.approx((1 + 0.5 * math.log(2)) / (1 - GAMMA))
    assert "so the bound for offline SAC is (r_max + α log 2)/(1-γ) = 134.7." in text
    assert numbers["verdicts"]["q1"]["regime"] == "matches_online"


def test_q1_without_the_entropy_backup_the_bound_holds_no_bonus(tmp_path):
    # the default keeps the entropy out of the critic's target: Q = 120 > r_max/(1-gamma) = 100 whatever alpha is
    numbers, text = report_text(tmp_path, {"replay/sac": {"q_greedy": 120.0, "q_data": 118.0, "alpha": 0.5}},
                                plan=plan_for(entropy_backup=False))
    assert numbers["verdicts"]["q1"]["regime"] == "overestimated"
    assert numbers["verdicts"]["q1"]["soft_bound"] == pytest.approx(1 / (1 - GAMMA))
    assert "These are soft values" not in text


def test_q1_below_and_above_the_online_agent(tmp_path):
    _, text = report_text(tmp_path / "below", {"replay/sac": {"finals": [40.0, 50.0, 60.0]}})
    assert "Offline SAC ends lower than the online agent while its values stay within the bound: the fixed data" in text
    _, text = report_text(tmp_path / "above", {"online": {"finals": [20.0, 25.0, 30.0]}})
    assert "Offline SAC ends higher than the online agent's final evaluation while its values stay within" in text


def test_q1_unconverged_critic(tmp_path):
    numbers, text = report_text(tmp_path, {"replay/sac": {"q_data": 5.0, "q_greedy": 6.0}})
    assert numbers["verdicts"]["q1"]["unconverged"]
    assert "Its critic is still far from the data's Monte Carlo return (5.0 vs 64.0): with this budget" in text


# ---------------------------------------------------------------------------------------
# Q2: offline SAC or CQL
# ---------------------------------------------------------------------------------------
def test_q2_overlapping_intervals_rank_nothing(tmp_path):
    _, text = report_text(tmp_path)
    assert ("final return IQM CQL 178.3 [160.0, 195.0] vs offline SAC 185.0 [170.0, 200.0] (n = 3 and 3 seeds); "
            "the 95% confidence intervals overlap, so this run does not separate them") in text
    assert "is better**" not in text


def test_q2_compares_cql_with_behaviour_cloning(tmp_path):
    _, text = report_text(tmp_path / "overlap")
    assert ("Against behaviour cloning, the reference that imitates the data's actions and learns no values: final "
            "return IQM CQL 178.3 [160.0, 195.0] vs behaviour cloning 170.0 [150.0, 190.0]") in text
    assert "expert data: SAC 150.0, CQL 140.0, BC 130.0" in text
    _, text = report_text(tmp_path / "bc", {"replay/bc": {"finals": [199.0, 199.5, 200.0]}})
    assert "do not overlap: **behaviour cloning is better**" in text


def test_q2_separated_intervals_name_the_better_agent(tmp_path):
    _, text = report_text(tmp_path / "cql", {"replay/cql": {"finals": [195.0, 198.0, 200.0]},
                                             "replay/sac": {"finals": [10.0, 12.0, 14.0]}})
    assert "the 95% confidence intervals do not overlap: **CQL is better**" in text
    _, text = report_text(tmp_path / "sac", {"replay/cql": {"finals": [10.0, 12.0, 14.0]}})
    assert "the 95% confidence intervals do not overlap: **offline SAC is better**" in text


def test_q2_one_seed_gives_no_interval(tmp_path):
    _, text = report_text(tmp_path, plan=plan_for(offline_seeds=(0,)))
    assert "(n = 1 and 1 seeds); with fewer than two seeds per agent there is no confidence interval" in text


def test_q2_cql_values_above_sac_with_a_large_alpha(tmp_path):
    numbers, text = report_text(tmp_path, {"replay/cql": {"q_data": 90.0, "q_greedy": 91.0, "alpha": 0.4}})
    assert numbers["verdicts"]["q2"]["q_relation"] == "higher than"
    assert "CQL's estimates are higher than offline SAC's. The CQL term logsumexp_a Q(s,a)" in text
    _, text = report_text(tmp_path / "lower")
    assert "CQL's estimates are lower than offline SAC's." in text and "The CQL term" not in text


# ---------------------------------------------------------------------------------------
# Q3: the CQL weight
# ---------------------------------------------------------------------------------------
def test_q3_weight_lowers_q_and_costs_return(tmp_path):
    numbers, text = report_text(tmp_path)
    q3 = numbers["verdicts"]["q3"]
    assert q3["weights"] == [0.0, 5.0, 50.0] and q3["q_trend"] == "down"
    assert ("A larger weight pushes the Q-values down: at weight 50 they are lower than the data's Monte Carlo "
            "return (64.0), at weight 0 lower than it.") in text
    assert "weight 50 at 125.0: the strongest penalty costs return here (weight 0 ends highest, at 177.5)" in text


def test_q3_no_clear_trend_and_no_cost(tmp_path):
    _, text = report_text(tmp_path, {"sweep/50": {"q_data": 70.0, "finals": [190.0, 200.0]}})
    assert "In this run the weight does not lower Q clearly and monotonically." in text
    assert "the strongest penalty does not cost return on this data." in text


# ---------------------------------------------------------------------------------------
# Another env
# ---------------------------------------------------------------------------------------
ACROBOT = {  # returns are negative (-1 per step until the goal), three actions
    "online": {"finals": [-90.0, -85.0, -100.0], "alpha": 0.2},
    "replay/sac": {"finals": [-400.0, -450.0, -420.0], "q_data": -25.0, "q_greedy": -28.0, "mc_return": -60.0,
                   "alpha": 0.2},
    "replay/cql": {"finals": [-110.0, -95.0, -120.0], "q_data": -55.0, "q_greedy": -52.0, "mc_return": -60.0,
                   "alpha": 0.2},
    "expert/sac": {"finals": [-100.0], "q_data": -40.0, "q_greedy": -20.0, "mc_return": -45.0, "alpha": 0.2},
    "expert/cql": {"finals": [-90.0], "q_data": -42.0, "q_greedy": -40.0, "mc_return": -45.0, "alpha": 0.2},
    "sweep/50": {"finals": [-130.0, -140.0], "q_data": -80.0, "q_greedy": -79.0, "mc_return": -60.0, "alpha": 0.2},
}


def test_report_on_acrobot_reads_without_cartpole(tmp_path):
    plan = plan_for(env="Acrobot-v1", cap=500)
    episodes = [np.r_[-np.ones(79), 0.0], np.r_[-np.ones(59), 0.0]]  # -1 per step, 0 on reaching the goal
    out = craft_study(tmp_path / "acrobot", ACROBOT, plan=plan, episode_rewards=episodes, num_actions=3)
    report = write_report(out, online_critic=critic_stub(-40.0, -38.0, -45.0))
    text = report.read_text()
    html = (out / "report" / "report.html").read_text()
    numbers = json.loads((out / "report" / "numbers.json").read_text())
    assert numbers["env"] == {"id": "Acrobot-v1", "num_actions": 3, "r_max": 0.0, "r_min": -1.0,
                              "reward_scale": pytest.approx(138 / 140), "gamma": GAMMA, "episode_cap": 500,
                              "q_bound": 0.0}
    assert text.startswith("# saclab study: SAC, offline SAC and CQL on Acrobot-v1\n")
    assert "episodes capped at 500 steps. Acrobot-v1 has 3 actions" in text
    assert "no value on Acrobot-v1 can exceed r_max/(1-γ) = 0.0" in text
    soft = 0.2 * math.log(3) / (1 - GAMMA)
    assert f"(r_max + α log 3)/(1-γ) = {soft:.1f}" in text
    # negative returns: lower is worse, and the critic at -25 of -60 has not converged
    assert "Offline SAC ends lower than the online agent while its values stay within the bound" in text
    assert "the 95% confidence intervals do not overlap: **CQL is better**" in text
    assert "Its critic is still far from the data's Monte Carlo return (-25.0 vs -60.0)" in text
    assert "A larger weight pushes the Q-values down" in text
    for page in (text, html, json.dumps(numbers)):
        assert "CartPole" not in page and "200-step" not in page and "log 2)" not in page
    assert html.count("data:image/png;base64,") == 4 and "<table>" in html and "<h1>" in html
    for figure in ("online.png", "offline.png", "cql_sweep.png", "q_vs_mc.png"):
        assert (out / "report" / "figures" / figure).stat().st_size > 5000


def test_bounds_when_every_reward_is_negative(tmp_path):
    """No episode reached the goal: every reward is -1, so the largest return is -1 (a one-step episode),
    not -1/(1-γ); the soft bound is r_max + α log|A| while that is negative (the runs' own q_bound)."""
    numbers, text = report_text(tmp_path, ACROBOT, plan=plan_for(env="Acrobot-v1", cap=500),
                                episode_rewards=[-np.ones(500), -np.ones(500)], num_actions=3)
    assert numbers["env"]["r_max"] == -1.0 and numbers["env"]["q_bound"] == -1.0
    assert "every reward in the study's data is -1, so no discounted return exceeds r_max = -1.0" in text
    assert "no value on Acrobot-v1 can exceed r_max = -1.0)" in text
    assert f"the bound for offline SAC is r_max + α log 3 = {-1 + 0.2 * math.log(3):.1f}." in text


def test_plans_take_the_env_and_its_episode_cap():
    assert plan_study("default", quick=True).env == "CartPole-v1"
    assert plan_study("default", quick=True).online.max_episode_steps == 200  # the notebook's, on its env
    acrobot = plan_study("default", quick=True, env="Acrobot-v1")
    assert acrobot.env == acrobot.online.env == acrobot.offline.env == "Acrobot-v1"
    assert acrobot.online.max_episode_steps == acrobot.offline.max_episode_steps == 500  # registered limit
    assert plan_study("default", env="LunarLander-v3").online.max_episode_steps == 1000
    assert plan_study("notebook", env="Acrobot-v1").online.max_episode_steps == 200  # the notebook preset's cap
    assert StudyPlan.from_dict(acrobot.to_dict()) == acrobot and acrobot.to_dict()["env"] == "Acrobot-v1"


def test_relation_scales_with_the_rewards():
    assert relation(10.0, 10.4) == "about the same as"  # within half a reward of 1
    assert relation(10.0, 11.0) == "lower than"
    assert relation(10.0, 11.0, scale=5.0) == "about the same as"
    assert relation(-100.0, -104.0) == "about the same as"  # within 5%
    assert relation(-120.0, -100.0) == "lower than"
