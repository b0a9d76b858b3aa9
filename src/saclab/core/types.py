"""The types every layer shares: what an environment looks like to the networks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSpec:
    """What the networks need to know about an environment."""

    env_id: str
    obs_dim: int
    num_actions: int
