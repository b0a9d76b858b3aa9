"""saclab: discrete Soft Actor-Critic, online, offline and with CQL, in JAX."""

from saclab.config import PRESETS, SACConfig, preset  # noqa: E402
from saclab.errors import SaclabError  # noqa: E402
from saclab.version import __version__  # noqa: E402

__all__ = ["SACConfig", "PRESETS", "preset", "SaclabError", "__version__",
           "train_online", "train_offline", "Dataset", "Policy", "evaluate_policy"]


def __getattr__(name: str):
    # Heavy modules (JAX, Gymnasium) load on first use, so `saclab --help` stays fast.
    if name == "train_online":
        from saclab.runs.online import train_online

        return train_online
    if name == "train_offline":
        from saclab.runs.offline import train_offline

        return train_offline
    if name == "Dataset":
        from saclab.data.dataset import Dataset

        return Dataset
    if name == "Policy":
        from saclab.runs.policy import Policy

        return Policy
    if name == "evaluate_policy":
        from saclab.envs.evaluate import evaluate_policy

        return evaluate_policy
    raise AttributeError(f"module 'saclab' has no attribute {name!r}")
