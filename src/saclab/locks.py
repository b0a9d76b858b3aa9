"""One writer per directory: an OS file lock held while a run, sweep or study writes there.

The lock is ``DIR/.saclab.lock`` (``filelock``: ``flock`` on Unix), so the operating system
releases it when its holder dies, even by ``kill -9``: a lock left by a dead process is
simply taken over.  The holder's PID is written beside it (``DIR/.saclab.pid``) to name it
when a second writer is refused.  A process may take the same directory's lock again
(a CLI that locks a run directory and then trains in it): the locks nest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from saclab.errors import SaclabError
from saclab.files import write_text

LOCK_FILE = ".saclab.lock"
PID_FILE = ".saclab.pid"
LOCK_FILES = (LOCK_FILE, PID_FILE)
"""The names a lock adds to a directory (directory checks ignore them)."""

_held: dict[Path, tuple[FileLock, int]] = {}  # directory -> (its lock, nesting depth) in this process


def holder_pid(directory: str | os.PathLike) -> int | None:
    """The PID recorded by the last process that locked ``directory`` (None if unknown)."""
    try:
        return int((Path(directory) / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


@contextmanager
def directory_lock(directory: str | os.PathLike, what: str = "run") -> Iterator[Path]:
    """Hold ``directory``'s lock (creating the directory) for the ``with`` block.

    A second process asking for it is refused at once with a one-line ``SaclabError`` naming
    the holder's PID; ``what`` names the directory in that message ("run", "sweep", "study").
    """
    directory = Path(directory).absolute()
    key = Path(os.path.normpath(directory))
    if key in _held:
        lock, depth = _held[key]
        _held[key] = (lock, depth + 1)
        try:
            yield key
        finally:
            _release(key)
        return
    if directory.exists() and not directory.is_dir():
        raise SaclabError(f"{directory} is a file, not a {what} directory; choose another --out")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(key / LOCK_FILE), timeout=0, thread_local=False)
        lock.acquire()
    except Timeout:
        pid = holder_pid(key)
        holder = f"process {pid}" if pid is not None else "another process"
        raise SaclabError(f"{what} directory {key} is in use by saclab {holder}; wait for it to finish, "
                          f"stop it, or choose another --out") from None
    except OSError as e:
        raise SaclabError(f"cannot write in {what} directory {key}: {e.strerror or e}") from None
    try:
        write_text(key / PID_FILE, f"{os.getpid()}\n")
    except OSError as e:
        lock.release()
        raise SaclabError(f"cannot write in {what} directory {key}: {e.strerror or e}") from None
    _held[key] = (lock, 1)
    try:
        yield key
    finally:
        _release(key)


def _release(key: Path) -> None:
    lock, depth = _held[key]
    if depth > 1:
        _held[key] = (lock, depth - 1)
        return
    del _held[key]
    lock.release()


__all__ = ["directory_lock", "holder_pid", "LOCK_FILE", "PID_FILE", "LOCK_FILES"]
