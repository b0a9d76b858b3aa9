"""``saclab export``: a trained run's actor as safetensors + JSON, for ``saclab.inference`` (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from saclab.cli.common import check_output_dir, parse, print_json
from saclab.errors import SaclabError


@dataclass
class ExportPolicyArgs:
    """Export a run's policy (its actor) for deployment: policy.json + actor.safetensors, loaded with
    saclab.inference.load(DIR) and NumPy alone (docs/own-logs.md)."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run directory (one seed, e.g. runs/cql/seed-0) or checkpoint directory."""
    out: Path | None = None
    """Output directory (created; refused if not empty unless --force)."""
    force: bool = False
    """Overwrite the policy files in a non-empty --out."""
    onnx: bool = False
    """Also write actor.onnx (inputs observations (N, obs_dim); outputs logits and action); pip install
    'saclab[onnx]'."""


def cmd_export(argv: list[str]) -> int:
    from saclab.runs.export import export_policy

    args = parse(ExportPolicyArgs, argv, "saclab export")
    if args.out is None:
        raise SaclabError("--out DIR is required")
    out = export_policy(args.run, check_output_dir(args.out), force=args.force, onnx=args.onnx)
    from saclab.inference import load

    policy = load(out)
    print_json({"policy": str(out), "source": policy.spec["source"], "obs_dim": policy.obs_dim,
                "num_actions": policy.num_actions, "env_id": policy.spec["env_id"],
                "load": f"from saclab.inference import load; policy = load({str(out)!r})",
                **({"onnx": str(out / "actor.onnx")} if args.onnx else {})})
    return 0


__all__ = ["cmd_export", "ExportPolicyArgs"]
