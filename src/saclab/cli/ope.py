"""``saclab ope``: off-policy evaluation (Fitted Q Evaluation) of trained policies on a dataset, and
``--select``, which ranks several by it (docs/own-logs.md, "Which policy to deploy")."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from saclab.cli.common import parse
from saclab.errors import SaclabError


@dataclass
class OPEArgs:
    """Estimate the discounted return of a trained policy's greedy actions from a dataset's initial states, with
    Fitted Q Evaluation and a bootstrap 95% CI; --select ranks several (a sweep directory, or several runs)."""

    runs: Annotated[tuple[Path, ...], tyro.conf.Positional]
    """Run directory (e.g. runs/cql/seed-0), checkpoint directory or exported policy (saclab export); with
    --select also sweep directories and several of them."""
    dataset: Path | None = None
    """Dataset file (saclab HDF5) to evaluate on: ideally episodes the policies were not trained on."""
    select: bool = False
    """Rank every policy under RUNS by its estimate, best first."""
    epochs: int = 0
    """FQE passes over the dataset (0: as many as make --updates updates)."""
    updates: int = 0
    """FQE updates when --epochs is 0 (0: 100 per regression times enough regressions to propagate the value over
    the discount's horizon, 459 at gamma 0.99: 45.9k updates)."""
    gamma: float = 0.99
    """Discount of the estimated return (use the one the policies were trained with)."""
    seed: int = 0
    """Seed of FQE's network, minibatches and bootstrap."""
    clip_targets: bool = True
    """Clip FQE's Bellman targets and values to the range every discounted return lies in, given the data's
    rewards (stops FQE diverging on policies whose actions the data rarely shows)."""


def cmd_ope(argv: list[str]) -> int:
    args = parse(OPEArgs, argv, "saclab ope")
    if not args.runs:
        raise SaclabError("give a run directory (or, with --select, several or a sweep directory)")
    if args.dataset is None:
        raise SaclabError("--dataset FILE is required (the data to evaluate the policy on)")
    if args.epochs < 0 or args.updates < 0:
        raise SaclabError("--epochs and --updates must be >= 0")
    if not 0.0 < args.gamma < 1.0:
        raise SaclabError(f"--gamma must be in (0, 1), got {args.gamma}")
    from saclab.data.dataset import Dataset
    from saclab.runs.fqe import FQEConfig, candidate_dirs, fqe_evaluate, load_evaluated_policy, rank

    candidates = candidate_dirs(list(args.runs))
    if len(candidates) > 1 and not args.select:
        raise SaclabError(f"{len(candidates)} policies under {', '.join(map(str, args.runs))}: pass --select to "
                          "rank them, or give one run directory")
    policies = [load_evaluated_policy(path) for path in candidates]  # every bad input refused before training
    dataset = Dataset.load(args.dataset)
    config = FQEConfig(epochs=args.epochs, min_updates=args.updates, gamma=args.gamma, seed=args.seed,
                       clip_targets=args.clip_targets)
    results = []
    for i, policy in enumerate(policies, 1):
        if len(policies) > 1:
            print(f"  FQE {i}/{len(policies)}: {policy.path}", file=sys.stderr, flush=True)
        results.append(fqe_evaluate(policy, dataset, config))
    first = results[0]
    where = (f"{first.initial_states} initial states of {args.dataset}, gamma {args.gamma:g}, "
             f"{first.updates} FQE updates ({first.epochs} epochs)")
    if not args.select:
        print(f"estimated discounted return of {first.policy} (greedy): {first.estimate:.3f}  "
              f"95% CI [{first.ci_low:.3f}, {first.ci_high:.3f}]")
    else:
        ranked = rank(results)
        width = max(len(r.policy) for r in ranked)
        print(f"{'rank':>4}  {'policy'.ljust(width)}  {'estimate':>10}  95% CI")
        for n, r in enumerate(ranked, 1):
            print(f"{n:>4}  {r.policy.ljust(width)}  {r.estimate:>10.3f}  [{r.ci_low:.3f}, {r.ci_high:.3f}]"
                  f"{'  diverged' if r.diverged else '  at the bound' if r.at_bound else ''}")
    print(f"data's own discounted return from those states (the behaviour policy's, Monte Carlo): "
          f"{first.data_mc_return:.3f}")
    print(f"({where}; the CI covers which initial states were logged, not FQE's own error)")
    for r in results:
        if r.diverged:
            print(f"saclab ope: warning: {r.policy}: estimate {r.estimate:.3g} lies outside [{r.return_range[0]:.3g}, "
                  f"{r.return_range[1]:.3g}], where every return lies: FQE diverged (the data rarely shows this "
                  "policy's actions); do not trust it", file=sys.stderr)
        elif r.at_bound:
            print(f"saclab ope: warning: {r.policy}: estimate {r.estimate:.3g} is the edge of "
                  f"[{r.return_range[0]:.3g}, {r.return_range[1]:.3g}], where every return lies: FQE's clipped "
                  "values sit there for every initial state, so the estimate says only 'at least' (or 'at most') "
                  "this", file=sys.stderr)
    return 0


__all__ = ["cmd_ope", "OPEArgs"]
