"""Process-level set-up: JAX's persistent compilation cache, threads, progress bars."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
_cache_enabled = False


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> None:
    """Cache compiled XLA programs on disk (``$SACLAB_CACHE`` or ~/.cache/saclab/jax):
    a second run of the same shapes skips compilation.  Set SACLAB_CACHE=off to disable."""
    global _cache_enabled
    if _cache_enabled:
        return
    setting = directory or os.environ.get("SACLAB_CACHE") or Path.home() / ".cache" / "saclab" / "jax"
    if str(setting).lower() == "off":
        return
    import jax  # here, so that importing this module (the CLI, the process pool) does not load JAX

    jax.config.update("jax_compilation_cache_dir", str(setting))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _cache_enabled = True


def single_thread_environment() -> dict[str, str]:
    """Environment variables that pin XLA and BLAS to one thread (for one-run-per-core pools)."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = (flags + " " + SINGLE_THREAD_XLA_FLAGS).strip()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def progress_bar(total: int, initial: int = 0, desc: str = "", enabled: bool | None = None) -> tqdm:
    """A tqdm bar; by default shown only when stderr is a terminal."""
    disable = (not sys.stderr.isatty()) if enabled is None else not enabled
    return tqdm(total=total, initial=initial, desc=desc, disable=disable, dynamic_ncols=True, leave=False)
