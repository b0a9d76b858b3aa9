"""A study's plan: what it runs, at which budgets, over which seeds (``study.json`` holds it).

``plan_study`` gives the plan of a preset on an env, full size or quick; the
notebook's presets add the ablation of the notebook's deviations.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from saclab.config import NOTEBOOK, SACConfig, preset
from saclab.errors import SaclabError
from saclab.runs.schema import config_from_json


@dataclass(frozen=True)
class StudyPlan:
    """What a study runs (written to study.json; a rerun must match it)."""

    preset: str
    quick: bool
    online: SACConfig
    offline: SACConfig
    online_seeds: tuple[int, ...]
    offline_seeds: tuple[int, ...]
    tiers: tuple[str, ...]
    tier_episodes: int
    tier_seeds: tuple[int, ...]
    tier_epochs: int
    sweep_weights: tuple[float, ...]
    sweep_seeds: tuple[int, ...]
    sweep_epochs: int
    ablation_seeds: tuple[int, ...] = ()
    """Seeds of each variant of the notebook's deviations (none: no ablation)."""
    ablation_epochs: int = 0

    @property
    def env(self) -> str:
        return self.online.env

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["online"], d["offline"] = self.online.to_dict(), self.offline.to_dict()
        d["env"] = self.env
        return json.loads(json.dumps(d))  # tuples -> lists, as stored

    @classmethod
    def from_dict(cls, d: Any, source: str = "study.json") -> StudyPlan:
        """The plan in a ``study.json`` (the run groups and datasets recorded beside it are ignored);
        every field is checked, and anything malformed is a one-line error naming ``source``."""
        if not isinstance(d, dict):
            raise SaclabError(f"{source}: not a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        missing = [name for name, f in fields.items() if name not in d and f.default is dataclasses.MISSING]
        if missing:
            raise SaclabError(f"{source}: missing field(s) {', '.join(missing)}")
        d = {k: v for k, v in d.items() if k in fields}
        if not isinstance(d["preset"], str) or not isinstance(d["quick"], bool):
            raise SaclabError(f"{source}: preset must be a string and quick true or false")
        d["online"] = config_from_json(d["online"], f"{source} (online)")
        d["offline"] = config_from_json(d["offline"], f"{source} (offline)")
        for name in ("tier_episodes", "tier_epochs", "sweep_epochs", "ablation_epochs"):
            if name in d and not (isinstance(d[name], int) and not isinstance(d[name], bool) and d[name] >= 0):
                raise SaclabError(f"{source}: {name} must be a non-negative integer, got {repr(d[name])[:40]}")
        for name, kind in _LISTS.items():
            if name not in d:  # studies written before the ablation have none
                continue
            values = d[name]
            if not isinstance(values, list) or not all(_is(v, kind) for v in values):
                raise SaclabError(f"{source}: {name} must be a list of {kind.__name__}s, got {repr(values)[:60]}")
            d[name] = tuple(values)
        return cls(**d)


_LISTS = {"online_seeds": int, "offline_seeds": int, "tiers": str, "tier_seeds": int, "sweep_weights": float,
          "sweep_seeds": int, "ablation_seeds": int}


def _is(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and 0 <= value < 2**31
    return isinstance(value, kind) and bool(value)


def episode_cap(preset_name: str, env: str) -> int:
    """The study's episode cap: the notebook's STEPS_PER_EPISODE (200) on the notebook's own env
    (whatever the preset, so that study's numbers stay the notebook's) and under the ``notebook``
    preset; on another env, its registered limit (Acrobot-v1 500, LunarLander-v3 1000), or the
    preset's cap if it has none."""
    if preset_name.startswith("notebook") or env == NOTEBOOK.env:
        return NOTEBOOK.max_episode_steps
    from saclab.envs.make import registered_episode_limit

    return registered_episode_limit(env) or preset(preset_name).max_episode_steps


def plan_study(preset_name: str = "default", quick: bool = False, env: str | None = None) -> StudyPlan:
    """The study for a preset on ``env`` (default: the preset's env, CartPole-v1).  Full size follows
    the notebook (4 online runs of 1000 episodes, 200 offline epochs with 100 evaluation episodes);
    ``quick`` keeps every phase but shrinks budgets to a few minutes on a 2-core CPU (on CartPole)."""
    base = preset(preset_name)
    env = env or base.env
    protocol = dict(env=env, max_episode_steps=episode_cap(preset_name, env), eval_every_episodes=4,
                    eval_episodes=10)
    # The notebook's presets also measure what each of its deviations costs (launch.ablation).
    ablation = preset_name.startswith("notebook")
    if quick:
        online = base.replace(**protocol, total_steps=8_000, total_episodes=0, checkpoint_every_steps=4_000)
        offline = base.replace(**protocol, cql_weight=0.0, epochs=60, offline_eval_episodes=20)
        return StudyPlan(preset_name, True, online, offline, online_seeds=(0, 1, 2), offline_seeds=(0, 1, 2),
                         tiers=("expert", "medium", "random"), tier_episodes=40, tier_seeds=(0,), tier_epochs=60,
                         sweep_weights=(0.0, 0.5, 1.0, 5.0, 10.0, 50.0), sweep_seeds=(0, 1), sweep_epochs=60,
                         ablation_seeds=(0, 1, 2) if ablation else (), ablation_epochs=60 if ablation else 0)
    online = base.replace(**protocol, total_episodes=1000, total_steps=0)
    offline = base.replace(**protocol, cql_weight=0.0, epochs=200, offline_eval_episodes=100)
    # As the notebook, one offline agent of each kind for 200 epochs (over a ~200k-transition buffer,
    # the study's largest cost); the sweep runs two seeds of 25 epochs and the tiers 20 epochs, so the
    # whole study stays within an hour of one core's compute (bench/study_time.py).
    # The ablation: 5 seeds of each variant, offline for 25 epochs as the sweep.
    return StudyPlan(preset_name, False, online, offline, online_seeds=(0, 1, 2, 3), offline_seeds=(0,),
                     tiers=("expert", "medium", "random"), tier_episodes=100, tier_seeds=(0,), tier_epochs=20,
                     sweep_weights=(0.0, 0.5, 1.0, 5.0, 10.0, 50.0), sweep_seeds=(0, 1), sweep_epochs=25,
                     ablation_seeds=(0, 1, 2, 3, 4) if ablation else (), ablation_epochs=25 if ablation else 0)


__all__ = ["StudyPlan", "plan_study", "episode_cap"]
