"""Every number of a study's report, computed from its run files and datasets (``numbers.json``).

The env's facts come from the data, not from constants: the number of actions
from the datasets' spaces, r_max as the largest reward in the study's datasets
(the same r_max the offline runs use for their ``q_bound``), and the reward
scale (mean |reward| per step) that the report's "about the same" tolerances
are measured in.  Nothing here writes prose; ``verdicts`` reads these numbers and
the templates render both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from saclab.analysis.critic import online_critic_numbers
from saclab.analysis.deviations import ablation_numbers, temperature_trend
from saclab.analysis.runfiles import StudyFiles, read_study
from saclab.analysis.stats import summarize_group
from saclab.core.losses import value_bound
from saclab.data.dataset import Dataset
from saclab.runs.runlog import read_run_config

CriticFn = Callable[[str, float], dict[str, float]]
DATASET_FIELDS = ("transitions", "episodes", "return_mean", "return_min", "return_max", "action_counts")


def env_numbers(study: StudyFiles, datasets: dict[str, Dataset]) -> dict[str, Any]:
    """The env's id, |A|, reward range and scale (from the datasets), gamma, episode cap, value bound."""
    rewards = np.concatenate([d.rewards for d in datasets.values()]) if datasets else np.zeros(1)
    online = study.plan["online"]
    gamma = float(online["gamma"])
    r_max = float(rewards.max())
    scale = float(np.abs(rewards).mean())
    return {"id": study.env, "num_actions": max((d.num_actions for d in datasets.values()), default=0),
            "r_max": r_max, "r_min": float(rewards.min()), "reward_scale": scale if scale > 0 else 1.0,
            "gamma": gamma, "episode_cap": online.get("max_episode_steps"), "q_bound": value_bound(r_max, gamma)}


def run_config(run: str | os.PathLike) -> dict[str, Any]:
    """The ``SACConfig`` fields a run recorded in its ``config.json`` (empty if none)."""
    return (read_run_config(run) or {}).get("config", {})


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def study_numbers(directory: str | os.PathLike, online_critic: CriticFn = online_critic_numbers) -> dict[str, Any]:
    """``{"plan", "env", "cql_weight", "groups", "datasets", "temperature", "ablation"}`` of the study in
    ``directory``.

    ``groups``: ``stats.summarize_group`` of each run group; the online group's
    ``q_data``, ``q_greedy`` and ``mc_return`` come from ``online_critic(run, gamma)``
    (its critic on its own replay buffer) and its ``q_bound`` from the data's r_max.
    ``temperature``: why alpha moved in the main groups; ``ablation``: the notebook's deviations
    (``deviations``; empty when the study ran none).
    """
    study = read_study(directory)
    datasets = {name: Dataset.load(path) for name, path in study.datasets.items()}
    env = env_numbers(study, datasets)
    groups: dict[str, Any] = {}
    for name, runs in study.groups.items():
        groups[name] = summarize_group(runs, name)
    online = groups["online"]
    critics = [online_critic(run, env["gamma"]) for run in online["runs"]]
    for key in ("q_data", "q_greedy", "mc_return"):
        online[key] = _mean([c[key] for c in critics])
    online["q_bound"] = env["q_bound"]
    cql_runs = groups["replay/cql"]["runs"]
    cql_weight = float(run_config(cql_runs[0]).get("cql_weight", math.nan)) if cql_runs else math.nan
    infos = {name: d.info() for name, d in datasets.items()}
    configs = {name: run_config(row["runs"][0]) if row["runs"] else {} for name, row in groups.items()}
    temperature = {name: temperature_trend(groups[name], configs[name], env["num_actions"])
                   for name in ("online", "replay/sac", "replay/cql") if name in groups and groups[name]["n"]}
    return {"plan": study.plan, "env": env, "cql_weight": cql_weight, "groups": groups,
            "datasets": {name: {f: info[f] for f in DATASET_FIELDS if f in info} for name, info in infos.items()},
            "temperature": temperature, "ablation": ablation_numbers(groups, configs, env)}


__all__ = ["study_numbers", "env_numbers"]
