"""Critic inference for the report: an online agent's critic evaluated on its own replay data.

Offline runs log their critic diagnostics in ``evaluations.csv`` as they train;
online runs do not, so the report loads the checkpoint and asks it once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from saclab.runs.runlog import REPLAY_FILE


def online_critic_numbers(run: str | os.PathLike, gamma: float) -> dict[str, float]:
    """Mean min-Q(s, a_data) and min-Q(s, greedy a) of the run's critic over its own replay buffer,
    and the discounted Monte Carlo return of the same transitions (``Dataset.discounted_returns``)."""
    from saclab.data.dataset import Dataset
    from saclab.runs.policy import Policy

    dataset = Dataset.load(Path(run) / REPLAY_FILE)
    q = Policy.load(run).q_values(dataset.observations)
    q_data = q[np.arange(len(dataset)), dataset.actions]
    return {"q_data": float(q_data.mean()), "q_greedy": float(q.max(axis=1).mean()),
            "mc_return": float(dataset.discounted_returns(gamma).mean())}


__all__ = ["online_critic_numbers"]
