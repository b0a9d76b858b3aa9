"""Which answer the measurements support, for each of the notebook's three comparison questions.

Each function reads ``numbers`` (``numbers.study_numbers``) and returns a plain
dict: the values an answer quotes and the name of the case it falls in (for
example ``regime = "overestimated"``).  The wording of each case lives in the
report's template; deciding the case lives here, where a test can call it.

Tolerances are in the data's units: two values are "about the same" within 5%
of the larger or half the reward scale (mean |reward| per step), and the
temperature counts as large when alpha exceeds 5% of that scale.  On CartPole
(every reward 1) that is the 0.5 and 0.05 the report has always used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from saclab.core.losses import soft_value_bound

SAME = "about the same as"
HALFWAY = 0.5  # a critic that covers less than half of the way from 0 to the data's return has not converged


def relation(a: float, b: float, scale: float = 1.0) -> str:
    """'lower than', 'higher than' or 'about the same as' (within 5% or half of ``scale``)."""
    if abs(a - b) <= max(0.5 * scale, 0.05 * max(abs(a), abs(b))):
        return SAME
    return "lower than" if a < b else "higher than"


def _nan(*values: float) -> bool:
    return any(v is None or math.isnan(v) for v in values)


def compare(name_a: str, a: dict[str, Any], name_b: str, b: dict[str, Any], key: str = "final") -> dict[str, Any]:
    """Two groups' IQM of the ``key`` return, with the case: ``no_ci`` (fewer than two seeds),
    ``overlap`` (95% CIs overlap) or ``separated`` (``winner`` names the higher)."""
    ea, eb = a[key], b[key]
    out = {"key": key, "name_a": name_a, "name_b": name_b, "a": ea["iqm"], "a_ci": list(ea["iqm_ci"]),
           "b": eb["iqm"], "b_ci": list(eb["iqm_ci"]), "n_a": a["n"], "n_b": b["n"], "winner": None}
    (lo1, hi1), (lo2, hi2) = ea["iqm_ci"], eb["iqm_ci"]
    if _nan(lo1, hi1, lo2, hi2):
        out["case"] = "no_ci"
    elif hi1 < lo2 or hi2 < lo1:
        out["case"], out["winner"] = "separated", name_a if ea["iqm"] > eb["iqm"] else name_b
    else:
        out["case"] = "overlap"
    return out


def entropy_in_target(numbers: dict[str, Any]) -> bool:
    """Whether the study's critics learned soft values (the entropy bonus in their target); plans
    written before the switch existed always did."""
    return bool(numbers["plan"]["offline"].get("entropy_backup", True))


def online_vs_offline(numbers: dict[str, Any]) -> dict[str, Any]:
    """Q1: why online and offline performance differ.

    ``regime``: ``overestimated`` (offline SAC's values exceed the soft-value bound:
    divergence), ``matches_online`` (about the same final return as the online agent),
    ``below_online`` or ``above_online`` (values within the bound).  ``soft_values``:
    alpha is large enough for the entropy bonus to matter.  ``unconverged``: offline
    SAC's critic covers less than half of the way from 0 to the data's Monte Carlo return.
    """
    g, env = numbers["groups"], numbers["env"]
    online, sac = g["online"], g["replay/sac"]
    scale = env["reward_scale"]
    gamma = numbers["plan"]["offline"]["gamma"]
    bound = env["q_bound"]
    soft_q = entropy_in_target(numbers)
    alpha = sac["alpha"] if soft_q else math.nan  # without the entropy backup Q holds no bonus
    soft = bound if _nan(alpha) else soft_value_bound(env["r_max"], alpha, env["num_actions"], gamma)
    gap = relation(sac["final"]["iqm"], online["final"]["iqm"], scale)
    if sac["q_greedy"] > soft or sac["q_data"] > soft:
        regime = "overestimated"
    elif gap == SAME:
        regime = "matches_online"
    else:
        regime = "below_online" if gap == "lower than" else "above_online"
    mc = sac["mc_return"]
    progress = sac["q_data"] / mc if not _nan(mc, sac["q_data"]) and mc != 0 else math.nan
    soft_reward = env["r_max"] + (0.0 if _nan(alpha) else alpha) * math.log(max(env["num_actions"], 1))
    out = {"regime": regime, "gap": gap, "soft_bound": soft, "soft_bound_discounted": soft_reward >= 0,
           "soft_values": soft_q and sac["alpha"] > 0.05 * scale,
           "unconverged": progress < HALFWAY, "progress": progress, "expert": None}
    if "expert/sac" in g and "expert/cql" in g:
        # the expert tier is collected from the online run with the highest final return
        out["expert"] = {"sac": g["expert/sac"], "source_final": max(online["final_values"], default=math.nan)}
    return out


def sac_vs_cql(numbers: dict[str, Any]) -> dict[str, Any]:
    """Q2: offline SAC or CQL: the two comparisons, how CQL's values relate to SAC's, the tiers.

    ``shift_note``: CQL's values are higher than SAC's while alpha is large (the CQL
    term cannot remove an entropy bonus that shifts every action alike)."""
    g, scale = numbers["groups"], numbers["env"]["reward_scale"]
    sac, cql = g["replay/sac"], g["replay/cql"]
    q = relation(cql["q_data"], sac["q_data"], scale)
    tiers = [{"tier": t, "sac": g[f"{t}/sac"]["final"]["mean"], "cql": g[f"{t}/cql"]["final"]["mean"],
              "bc": g[f"{t}/bc"]["final"]["mean"] if f"{t}/bc" in g else None,
              "data_return": numbers["datasets"][t]["return_mean"]}
             for t in numbers["plan"]["tiers"] if f"{t}/sac" in g and f"{t}/cql" in g and t in numbers["datasets"]]
    bc = g.get("replay/bc")  # studies before behaviour cloning have none
    return {"final": compare("CQL", cql, "offline SAC", sac, "final"),
            "bc": compare("CQL", cql, "behaviour cloning", bc, "final") if bc is not None and bc["n"] else None,
            "best": compare("CQL", cql, "offline SAC", sac, "best"),
            "q_relation": q,
            "shift_note": q == "higher than" and entropy_in_target(numbers) and cql["alpha"] > 0.05 * scale,
            "tiers": tiers, "tier_seeds": len(numbers["plan"]["tier_seeds"])}


def cql_weight(numbers: dict[str, Any]) -> dict[str, Any] | None:
    """Q3: the CQL-weight sweep (None without one).

    ``q_trend``: ``down`` (Spearman rho between weight and Q below -0.5 and Q at the
    largest weight lower than at the smallest) or ``unclear``; ``costs_return``: the
    largest weight ends lower than the best weight."""
    from scipy.stats import spearmanr

    g, scale = numbers["groups"], numbers["env"]["reward_scale"]
    sweep = sorted((float(k.split("/", 1)[1]), v) for k, v in g.items() if k.startswith("sweep/"))
    if not sweep:
        return None
    weights = [w for w, _ in sweep]
    q = [v["q_data"] for _, v in sweep]
    finals = [v["final"]["iqm"] for _, v in sweep]
    rho = float(spearmanr(weights, q).statistic) if len(set(q)) > 1 else math.nan
    mc = sweep[0][1]["mc_return"]
    trend = "down" if not _nan(rho) and rho < -0.5 and relation(q[-1], q[0], scale) == "lower than" else "unclear"
    return {"weights": weights, "q": q, "finals": finals, "rho": rho, "mc": mc,
            "best_weight": weights[int(np.nanargmax(finals))], "q_trend": trend,
            "q_high_vs_mc": relation(q[-1], mc, scale), "q_low_vs_mc": relation(q[0], mc, scale),
            "costs_return": relation(finals[-1], max(finals), scale) == "lower than"}


def verdicts(numbers: dict[str, Any]) -> dict[str, Any]:
    """The three answers' cases and values."""
    return {"q1": online_vs_offline(numbers), "q2": sac_vs_cql(numbers), "q3": cql_weight(numbers)}


__all__ = ["verdicts", "online_vs_offline", "sac_vs_cql", "cql_weight", "compare", "relation"]
