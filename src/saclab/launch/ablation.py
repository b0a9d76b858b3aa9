"""The notebook's deviations, one at a time: the variants of a config that the study's ablation runs.

The course notebook departs from discrete SAC in three places (docs/presets.md):

* ``temperature_loss``: its temperature loss is a plain mean over actions (alpha only decays);
* ``truncation``: a time-limit truncation is terminal (no bootstrap at the episode cap);
* ``epoch_sampler``: its offline epochs permute the whole buffer capacity (most minibatches are empty slots).

Each variant is the corrected algorithm (every switch off) with one deviation on,
plus all of them together (the ``notebook-faithful`` preset's algorithm).  The
epoch sampler only exists offline, so online variants leave it out.
"""

from __future__ import annotations

from saclab.config import NOTEBOOK_DEVIATIONS as DEVIATIONS
from saclab.config import SACConfig

ONLINE_DEVIATIONS = ("temperature_loss", "truncation")
CORRECTED, ALL = "corrected", "all"


def corrected(config: SACConfig) -> SACConfig:
    """``config`` with every deviation off (the same hyperparameters, the correct algorithm)."""
    return config.replace(**{field: False for switches in DEVIATIONS.values() for field in switches})


def variants(config: SACConfig, online: bool) -> dict[str, SACConfig]:
    """``corrected``, each deviation alone, and ``all`` of them, as configs built from ``config``."""
    names = ONLINE_DEVIATIONS if online else tuple(DEVIATIONS)
    base = corrected(config)
    out: dict[str, SACConfig] = {CORRECTED: base}
    for name in names:
        out[name] = base.replace(**DEVIATIONS[name])
    out[ALL] = base.replace(**{field: True for name in names for field in DEVIATIONS[name]})
    return out


def deviations_on(config: SACConfig) -> list[str]:
    """The names of the deviations ``config`` has on."""
    return [name for name, switches in DEVIATIONS.items() if all(getattr(config, f) for f in switches)]


__all__ = ["ONLINE_DEVIATIONS", "CORRECTED", "ALL", "corrected", "variants", "deviations_on"]
