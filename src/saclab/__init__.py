"""saclab: discrete Soft Actor-Critic, online, offline and with CQL, in JAX."""

__version__ = "0.1.0"

from saclab.config import PRESETS, SACConfig, preset  # noqa: E402
from saclab.errors import SaclabError  # noqa: E402

__all__ = ["SACConfig", "PRESETS", "preset", "SaclabError", "__version__",
           "train_online", "train_offline", "Dataset", "evaluate_policy"]


def __getattr__(name: str):
    # Heavy modules (JAX, Gymnasium) load on first use, so `saclab --help` stays fast.
    if name == "train_online":
        from saclab.online import train_online

        return train_online
    if name == "train_offline":
        from saclab.offline import train_offline

        return train_offline
    if name == "Dataset":
        from saclab.data import Dataset

        return Dataset
    if name == "evaluate_policy":
        from saclab.evaluate import evaluate_policy

        return evaluate_policy
    raise AttributeError(f"module 'saclab' has no attribute {name!r}")
