"""The study's report: figures, a table with IQM and 95% CIs, and the notebook's
three comparison questions answered from this run's numbers.

The report is a list of blocks (headings, paragraphs, tables, figures)
rendered twice: Markdown (``report.md``, figures as PNG files) and one
self-contained HTML page (``report.html``, figures embedded).  Every number
in the text comes from ``numbers.json``, which is computed from the runs'
logs (evaluations.csv) and datasets; nothing is a canned conclusion.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saclab.errors import SaclabError
from saclab.files import write_text
from saclab.runs.runlog import read_evaluations, read_metrics

THEORY_LINK = "https://github.com/saclab/saclab/blob/main/docs/theory.md"


# ---------------------------------------------------------------------------------------
# Blocks and rendering
# ---------------------------------------------------------------------------------------
@dataclass
class Block:
    kind: str  # "h1" | "h2" | "p" | "table" | "figure" | "list"
    content: Any
    caption: str = ""


def render_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.content}\n")
        elif b.kind == "h2":
            out.append(f"## {b.content}\n")
        elif b.kind == "p":
            out.append(f"{b.content}\n")
        elif b.kind == "list":
            out.append("\n".join(f"- {item}" for item in b.content) + "\n")
        elif b.kind == "table":
            header, *rows = b.content
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
            out.append("")
        elif b.kind == "figure":
            out.append(f"![{b.caption}]({b.content})\n\n*{b.caption}*\n")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then the little Markdown the report uses: **bold**, `code`, [links](url)."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', text)


def render_html(blocks: list[Block], figure_dir: Path) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>saclab study report</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;"
             "line-height:1.5}table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
             "figcaption{font-style:italic;color:#444}code{background:#f5f5f5}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2"):
            parts.append(f"<{b.kind}>{_inline(b.content)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            header, *rows = b.content
            parts.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>")
            parts.extend("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            parts.append("</table>")
        elif b.kind == "figure":
            data = base64.b64encode((figure_dir.parent / b.content).read_bytes()).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(b.caption)}'>"
                         f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------
def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(lo: float, hi: float) -> str:
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _last(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r and isinstance(r[key], (int, float))]
    return float(values[-1]) if values else math.nan


def group_numbers(runs: list[str]) -> dict[str, Any]:
    """Final/best return statistics (mean, IQM, 95% CIs) and final value diagnostics of a group."""
    from saclab.analysis.stats import interval_estimates

    evals = [read_evaluations(r) for r in runs]
    if any(not e for e in evals):
        missing = [r for r, e in zip(runs, evals, strict=True) if not e]
        raise SaclabError(f"run without evaluations: {missing[0]}")
    finals = np.array([e[-1]["return_mean"] for e in evals])
    bests = np.array([max(r["return_mean"] for r in e) for e in evals])
    numbers: dict[str, Any] = {"n": len(runs), "runs": list(runs),
                               "final": interval_estimates(finals), "best": interval_estimates(bests),
                               "final_values": finals.tolist(), "best_values": bests.tolist()}
    for key in ("q_data", "q_greedy", "mc_return", "q_bound"):
        values = [_last(e, key) for e in evals]
        numbers[key] = float(np.nanmean(values)) if not all(math.isnan(v) for v in values) else math.nan
    numbers["overestimated_runs"] = sum(any(r.get("overestimated") is True for r in e) for e in evals)
    alphas = [m[-1]["alpha"] for m in (read_metrics(r) for r in runs) if m and "alpha" in m[-1]]
    numbers["alpha"] = float(np.mean(alphas)) if alphas else math.nan
    return numbers


def soft_bound(r_max: float, alpha: float, num_actions: int, gamma: float) -> float:
    """The largest soft value at a fixed alpha: (r_max + alpha log|A|) / (1 - gamma)."""
    return (r_max + alpha * math.log(num_actions)) / (1.0 - gamma)


def online_q_numbers(run: str, gamma: float) -> dict[str, float]:
    """The online agent's critic on its own replay data: mean min-Q(s, a_data) vs the discounted
    Monte Carlo return of the same transitions."""
    from saclab.data.dataset import Dataset
    from saclab.runs.policy import Policy

    dataset = Dataset.load(Path(run) / "replay.h5")
    policy = Policy.load(run)
    q = policy.q_values(dataset.observations)
    q_data = q[np.arange(len(dataset)), dataset.actions]
    return {"q_data": float(q_data.mean()), "q_greedy": float(q.max(axis=1).mean()),
            "mc_return": float(dataset.discounted_returns(gamma).mean())}


def compute_numbers(out: Path) -> dict[str, Any]:
    from saclab.launch.study import PLAN_FILE, StudyPlan, offline_jobs, online_jobs

    plan = StudyPlan.from_dict(json.loads((out / PLAN_FILE).read_text()))
    online_runs = [j.run_dir for j in online_jobs(plan, out)]
    _, groups = offline_jobs(plan, out)
    numbers: dict[str, Any] = {"plan": plan.to_dict(), "groups": {}}
    numbers["groups"]["online"] = group_numbers(online_runs)
    q_online = [online_q_numbers(r, plan.online.gamma) for r in online_runs]
    for key in ("q_data", "q_greedy", "mc_return"):
        numbers["groups"]["online"][key] = float(np.mean([q[key] for q in q_online]))
    numbers["groups"]["online"]["q_bound"] = 1.0 / (1.0 - plan.online.gamma)
    for name, runs in groups.items():
        numbers["groups"][name] = group_numbers(runs)
    from saclab.data.dataset import Dataset

    datasets = {}
    for s in plan.online_seeds:
        info = Dataset.load(Path(online_runs[plan.online_seeds.index(s)]) / "replay.h5").info()
        datasets[f"replay seed {s}"] = info
    for tier in plan.tiers:
        datasets[tier] = Dataset.load(out / "datasets" / f"{tier}.h5").info()
    numbers["datasets"] = {k: {f: v[f] for f in ("transitions", "episodes", "return_mean", "return_max",
                                                 "action_counts") if f in v} for k, v in datasets.items()}
    return numbers


# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------
def _figures(out: Path, numbers: dict[str, Any], figure_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from saclab.analysis.plots import plot_groups

    plan, groups = numbers["plan"], numbers["groups"]
    figure_dir.mkdir(parents=True, exist_ok=True)
    figs = {}
    x_online = "episode" if plan["online"]["total_episodes"] and not plan["online"]["total_steps"] else "step"
    plot_groups({"online SAC": groups["online"]["runs"]}, figure_dir / "online.png", x=x_online,
                title="Online SAC on CartPole-v1 (mean ± std over seeds)")
    figs["online"] = "figures/online.png"
    plot_groups({"offline SAC": groups["replay/sac"]["runs"], "CQL (weight 5)": groups["replay/cql"]["runs"]},
                figure_dir / "offline.png", x="epoch",
                title="Offline SAC vs CQL on the online replay buffers (mean ± std over seeds)")
    figs["offline"] = "figures/offline.png"

    sweep = sorted(((float(k.split("/", 1)[1]), v) for k, v in groups.items() if k.startswith("sweep/")))
    if sweep:
        weights = [w for w, _ in sweep]
        xs = np.arange(len(weights))
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for key, label in (("final", "final return"), ("best", "best return")):
            mean = [g[key]["iqm"] for _, g in sweep]
            lo = [g[key]["iqm"] - g[key]["iqm_ci"][0] if not math.isnan(g[key]["iqm_ci"][0]) else 0 for _, g in sweep]
            hi = [g[key]["iqm_ci"][1] - g[key]["iqm"] if not math.isnan(g[key]["iqm_ci"][1]) else 0 for _, g in sweep]
            ax1.errorbar(xs, mean, yerr=[lo, hi], marker="o", capsize=3, label=f"{label} (IQM, 95% CI)")
        ax1.set_xticks(xs, [f"{w:g}" for w in weights])
        ax1.set_xlabel("CQL weight (TRADEOFF_FACTOR)")
        ax1.set_ylabel("greedy evaluation return")
        ax1.legend(fontsize=8)
        ax1.grid(alpha=0.3)
        ax2.plot(xs, [g["q_data"] for _, g in sweep], marker="o", label="mean Q(s, a_data)")
        ax2.plot(xs, [g["q_greedy"] for _, g in sweep], marker="s", label="mean Q(s, greedy a)")
        ax2.axhline(sweep[0][1]["mc_return"], color="k", linestyle="--", label="Monte Carlo return of the data")
        ax2.set_yscale("symlog")
        ax2.set_xticks(xs, [f"{w:g}" for w in weights])
        ax2.set_xlabel("CQL weight")
        ax2.set_ylabel("value (final epoch)")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
        fig.suptitle("Effect of the CQL weight (offline, replay data)")
        fig.tight_layout()
        fig.savefig(figure_dir / "cql_sweep.png", dpi=120)
        plt.close(fig)
        figs["sweep"] = "figures/cql_sweep.png"

    agents = [k for k in ("online", "replay/sac", "replay/cql") if k in groups]
    agents += [k for k in groups if k.split("/")[0] in plan["tiers"]]
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = np.arange(len(agents))
    ax.bar(xs - 0.27, [groups[a]["q_data"] for a in agents], 0.27, label="predicted Q(s, a_data)")
    ax.bar(xs, [groups[a]["q_greedy"] for a in agents], 0.27, label="predicted Q(s, greedy a)")
    ax.bar(xs + 0.27, [groups[a]["mc_return"] for a in agents], 0.27, label="Monte Carlo return")
    ax.axhline(1 / (1 - plan["online"]["gamma"]), color="grey", linestyle=":", label="r_max / (1 - γ)")
    ax.set_yscale("symlog")
    ax.set_xticks(xs, agents, rotation=20, fontsize=8)
    ax.set_ylabel("value")
    ax.set_title("Predicted Q against the Monte Carlo return of each agent's training data")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(figure_dir / "q_vs_mc.png", dpi=120)
    plt.close(fig)
    figs["q"] = "figures/q_vs_mc.png"
    return figs


# ---------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------
def _overlap(a: dict, b: dict) -> bool:
    lo1, hi1 = a["iqm_ci"]
    lo2, hi2 = b["iqm_ci"]
    if any(math.isnan(v) for v in (lo1, hi1, lo2, hi2)):
        return True
    return not (hi1 < lo2 or hi2 < lo1)


def _relation(a: float, b: float) -> str:
    """'lower', 'higher' or 'about the same as' (within 5% or 0.5)."""
    if abs(a - b) <= max(0.5, 0.05 * max(abs(a), abs(b))):
        return "about the same as"
    return "lower than" if a < b else "higher than"


def _compare(name_a: str, a: dict, name_b: str, b: dict, key: str = "final") -> str:
    va, vb = a[key]["iqm"], b[key]["iqm"]
    if any(math.isnan(v) for v in (*a[key]["iqm_ci"], *b[key]["iqm_ci"])):
        verdict = "with fewer than two seeds per agent there is no confidence interval, so this does not rank them"
    elif _overlap(a[key], b[key]):
        verdict = "the 95% confidence intervals overlap, so this run does not separate them"
    else:
        verdict = f"the 95% confidence intervals do not overlap: **{name_a if va > vb else name_b} is better**"
    return (f"{key} return IQM {name_a} {_fmt(va)} {_ci(*a[key]['iqm_ci'])} vs {name_b} {_fmt(vb)} "
            f"{_ci(*b[key]['iqm_ci'])} (n = {a['n']} and {b['n']} seeds); {verdict}")


def answers(numbers: dict[str, Any]) -> list[Block]:
    g = numbers["groups"]
    online, sac, cql = g["online"], g["replay/sac"], g["replay/cql"]
    bound = online["q_bound"]
    blocks = [Block("h2", "Answers to the notebook's comparison questions")]

    # Q1
    text = (f"**Why do online and offline performance differ?** The online agent ends at a final return IQM "
            f"of {_fmt(online['final']['iqm'])} (best {_fmt(online['best']['iqm'])}); trained on its replay "
            f"buffer without interaction, offline SAC ends at {_fmt(sac['final']['iqm'])} (best "
            f"{_fmt(sac['best']['iqm'])}) and CQL at {_fmt(cql['final']['iqm'])} (best {_fmt(cql['best']['iqm'])}). ")
    text += (f"The online critic, checked on its own data, predicts {_fmt(online['q_data'])} for the logged "
             f"actions against a discounted Monte Carlo return of {_fmt(online['mc_return'])}; offline SAC's "
             f"critic ends at {_fmt(sac['q_data'])} on dataset actions and {_fmt(sac['q_greedy'])} on its own "
             f"greedy actions (the data's Monte Carlo return: {_fmt(sac['mc_return'])}, and no CartPole value can "
             f"exceed r_max/(1-γ) = {_fmt(bound)}). ")
    gap = _relation(sac["final"]["iqm"], online["final"]["iqm"])
    gamma = numbers["plan"]["offline"]["gamma"]
    sac_soft = soft_bound(1.0, sac["alpha"], 2, gamma) if not math.isnan(sac["alpha"]) else bound
    if sac["alpha"] > 0.05:
        text += (f"These are soft values: offline SAC's α ended at {_fmt(sac['alpha'], 3)} and the online agents' at "
                 f"{_fmt(online['alpha'], 3)}, and a soft value includes up to α·log|A|/(1-γ) of entropy bonus, so "
                 f"the bound for offline SAC is (r_max + α log 2)/(1-γ) = {_fmt(sac_soft)}. ")
    if sac["q_greedy"] > sac_soft or sac["q_data"] > sac_soft:
        text += ("Offline SAC's values exceed what any policy can earn: with no new data to correct them, "
                 "errors on actions the dataset rarely shows are bootstrapped and grow (extrapolation error), "
                 "and the actor follows them; online, the agent would try those actions and correct them. ")
    elif gap == "about the same as":
        text += ("On these replay buffers offline SAC does about as well as the online agent: a learning agent's "
                 "buffer holds its early, failing episodes as well as its good ones (action counts: " +
                 ", ".join(f"{k}: {v['action_counts']}" for k, v in numbers["datasets"].items()
                           if k.startswith("replay")) + "). ")
    else:
        text += (f"Offline SAC ends {gap} the online agent while its values stay below the bound: the fixed data, "
                 "not divergence, limits it here; the policy cannot try the actions its critic is unsure about. ")
    if sac["q_data"] < 0.5 * sac["mc_return"]:
        text += (f"Its critic is still far below the data's Monte Carlo return ({_fmt(sac['q_data'])} vs "
                 f"{_fmt(sac['mc_return'])}): with this budget the values have not propagated through the "
                 "episodes yet, and the greedy policy only needs their ordering. ")
    expert_sac, expert_cql = g.get("expert/sac"), g.get("expert/cql")
    if expert_sac and expert_cql:
        text += (f"Narrow data shows what interaction buys: on the expert tier (one action per state, from a "
                 f"greedy policy) offline SAC ends at {_fmt(expert_sac['final']['mean'])} with Q on its greedy "
                 f"actions {_fmt(expert_sac['q_greedy'])} vs {_fmt(expert_sac['q_data'])} on the data's actions "
                 f"(Monte Carlo {_fmt(expert_sac['mc_return'])}), where the online agent that produced the data "
                 f"scores {_fmt(online['final']['mean'])}.")
    blocks.append(Block("p", text))

    # Q2
    text = f"**Which is better, offline SAC or CQL?** On the replay data: {_compare('CQL', cql, 'offline SAC', sac)}. "
    text += f"Best return during training: {_compare('CQL', cql, 'offline SAC', sac, 'best')}. "
    text += (f"CQL's critic ends at {_fmt(cql['q_data'])} on dataset actions vs {_fmt(sac['q_data'])} for offline "
             f"SAC (Monte Carlo {_fmt(cql['mc_return'])}): ")
    text += f"CQL's estimates are {_relation(cql['q_data'], sac['q_data'])} offline SAC's. "
    if _relation(cql["q_data"], sac["q_data"]) == "higher than" and cql["alpha"] > 0.05:
        text += (f"The CQL term logsumexp_a Q(s,a) − Q(s,a_data) does not change when every action's value shifts "
                 f"by the same amount, so it cannot remove the entropy bonus that α (here {_fmt(cql['alpha'], 3)} at "
                 "the end) adds to all actions alike; it only orders the actions. ")
    tier_lines = []
    for tier in numbers["plan"]["tiers"]:
        if f"{tier}/sac" in g and f"{tier}/cql" in g:
            ts, tc = g[f"{tier}/sac"], g[f"{tier}/cql"]
            tier_lines.append(f"{tier} data: SAC {_fmt(ts['final']['mean'])}, CQL {_fmt(tc['final']['mean'])} "
                              f"(data's mean episode return {_fmt(numbers['datasets'][tier]['return_mean'])})")
    if tier_lines:
        seeds = len(numbers["plan"]["tier_seeds"])
        text += (f"On the other datasets (final return, {seeds} seed{'s' if seeds > 1 else ''} each): "
                 + "; ".join(tier_lines) + ".")
    blocks.append(Block("p", text))

    # Q3
    sweep = sorted(((float(k.split("/", 1)[1]), v) for k, v in g.items() if k.startswith("sweep/")))
    if sweep:
        from scipy.stats import spearmanr

        weights = [w for w, _ in sweep]
        q = [v["q_data"] for _, v in sweep]
        finals = [v["final"]["iqm"] for _, v in sweep]
        rho_q = spearmanr(weights, q).statistic if len(set(q)) > 1 else math.nan
        best_w = weights[int(np.nanargmax(finals))]
        text = ("**What does TRADEOFF_FACTOR do?** Across weights " + ", ".join(f"{w:g}" for w in weights) +
                ": mean Q on dataset actions " + ", ".join(_fmt(v) for v in q) +
                f" (Spearman ρ between weight and Q: {_fmt(rho_q, 2)}); final return IQM " +
                ", ".join(_fmt(v) for v in finals) + f". The highest final return is at weight {best_w:g}. ")
        mc = sweep[0][1]["mc_return"]
        if not math.isnan(rho_q) and rho_q < -0.5 and _relation(q[-1], q[0]) == "lower than":
            text += (f"A larger weight pushes the Q-values down: at weight {weights[-1]:g} they are "
                     f"{_relation(q[-1], mc)} the data's Monte Carlo return ({_fmt(mc)}), at weight {weights[0]:g} "
                     f"{_relation(q[0], mc)} it. ")
        else:
            text += "In this run the weight does not lower Q clearly and monotonically. "
        low, high = finals[0], finals[-1]
        text += (f"Weight {weights[0]:g} (plain offline SAC) ends at {_fmt(low)} and weight {weights[-1]:g} at "
                 f"{_fmt(high)}: ")
        if _relation(high, max(finals)) == "lower than":
            text += ("the strongest penalty costs return here; a very large weight leaves the critic little more "
                     "than the data's action frequencies to follow.")
        else:
            text += "the strongest penalty does not cost return on this data."
        blocks.append(Block("p", text))
    return blocks


def _table(numbers: dict[str, Any]) -> Block:
    header = ["agent / data", "n", "final mean", "final IQM [95% CI]", "best mean", "best IQM [95% CI]",
              "Q(s,a_data)", "Q(s,greedy)", "MC return", "α (final)"]
    rows = [header]
    for name, g in numbers["groups"].items():
        rows.append([name, g["n"], _fmt(g["final"]["mean"]), f"{_fmt(g['final']['iqm'])} {_ci(*g['final']['iqm_ci'])}",
                     _fmt(g["best"]["mean"]), f"{_fmt(g['best']['iqm'])} {_ci(*g['best']['iqm_ci'])}",
                     _fmt(g["q_data"]), _fmt(g["q_greedy"]), _fmt(g["mc_return"]), _fmt(g["alpha"], 3)])
    return Block("table", rows)


def write_report(out: str | os.PathLike) -> Path:
    """Compute the numbers from the logged runs and write report.md, report.html and numbers.json."""
    out = Path(out)
    report_dir = out / "report"
    figure_dir = report_dir / "figures"
    numbers = compute_numbers(out)
    figs = _figures(out, numbers, figure_dir)
    plan = numbers["plan"]
    blocks = [
        Block("h1", "saclab study: SAC, offline SAC and CQL on CartPole-v1"),
        Block("p", f"Preset `{plan['preset']}`{' (quick)' if plan['quick'] else ''}: "
                   f"{len(plan['online_seeds'])} online runs, offline SAC and CQL (weight 5) on their replay "
                   f"buffers over {len(plan['offline_seeds'])} seed(s) × {plan['offline']['epochs']} epochs, "
                   f"tiers {', '.join(plan['tiers'])}, and a CQL-weight sweep. Evaluations are greedy, on a separate "
                   "vector environment, 200-step episodes. Theory: [docs/theory.md](../../docs/theory.md) "
                   "(relative to a checkout of saclab)."),
        Block("h2", "Online SAC"),
        Block("figure", figs["online"], "Greedy evaluation return of online SAC, mean ± std over seeds."),
        Block("h2", "Offline SAC vs CQL"),
        Block("figure", figs["offline"], "Offline SAC and CQL trained on the online agents' replay buffers."),
    ]
    if "sweep" in figs:
        blocks += [Block("h2", "CQL weight sweep"),
                   Block("figure", figs["sweep"], "Return and Q-values against the CQL weight (TRADEOFF_FACTOR).")]
    blocks += [Block("h2", "Predicted Q vs Monte Carlo return"),
               Block("figure", figs["q"], "Each agent's critic on its training data against the data's discounted "
                                          "Monte Carlo return (log scale above 1)."),
               Block("h2", "Returns (IQM and 95% bootstrap CIs across seeds)"), _table(numbers),
               Block("p", "Datasets: " + "; ".join(f"{k}: {v['transitions']} transitions, {v['episodes']} episodes, "
                                                   f"mean return {_fmt(v['return_mean'])}"
                                                   for k, v in numbers["datasets"].items()) + ".")]
    blocks += answers(numbers)
    report_dir.mkdir(parents=True, exist_ok=True)
    write_text(report_dir / "numbers.json", json.dumps(numbers, indent=2, default=float))
    write_text(report_dir / "report.md", render_markdown(blocks))
    write_text(report_dir / "report.html", render_html(blocks, figure_dir))
    return report_dir / "report.md"
