"""The ``saclab`` command: one subcommand per module of this package.

Each subcommand's flags come from a dataclass (tyro), so ``--help`` shows
every option with its default; ``--preset`` picks the defaults the other
flags override.  Errors print one line, ``saclab <cmd>: error: ...``, and exit 2.
The subcommand modules import only their flags and ``saclab.cli.common`` at load
time (JAX and Gymnasium when run), so ``saclab --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from saclab.cli import export, offline, ope, study, sweep, train
from saclab.errors import SaclabError

COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "train": ("train SAC online on a Gymnasium env (several seeds in parallel)", train.cmd_train),
    "evaluate": ("evaluate a checkpoint's (or an exported policy's) greedy policy", train.cmd_evaluate),
    "plot": ("plot evaluation curves (mean and 95% bootstrap CI over seeds)", train.cmd_plot),
    "offline": ("train SAC or CQL-SAC offline on a dataset", offline.cmd_offline),
    "collect": ("collect a dataset with a checkpoint or a random policy", offline.cmd_collect),
    "dataset": ("dataset tools: info | export | import (your logs: CSV, npz, Parquet; Minari)", offline.cmd_dataset),
    "export": ("export a run's policy as safetensors + JSON for NumPy-only inference", export.cmd_export),
    "ope": ("off-policy evaluation (FQE) of a policy on a dataset; --select ranks several", ope.cmd_ope),
    "sweep": ("grid x seeds of online or offline runs (local processes or Ray)", sweep.cmd_sweep),
    "summarize": ("table of a sweep: mean, IQM and 95% CIs per configuration", sweep.cmd_summarize),
    "study": ("the notebook study end to end, with a written report", study.cmd_study),
    "report": ("rebuild a study's report from its logged runs", study.cmd_report),
}


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: saclab <command> [options]   (saclab <command> --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (text, _) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from saclab.version import __version__

        print(f"saclab {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"saclab: error: unknown command {name!r} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    try:
        return COMMANDS[name][1](rest)
    except SaclabError as e:
        print(f"saclab {name}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"saclab {name}: error: out of memory (lower buffer_size, hidden_sizes or the number of workers)",
              file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only directory, a file where a directory should be
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"saclab {name}: error: {e.strerror or e}{where}".splitlines()[0], file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"saclab {name}: interrupted; the last checkpoint is kept (rerun with --resume to continue)",
              file=sys.stderr)
        return 130
    except Exception as e:  # a bug of saclab's: still one line; SACLAB_DEBUG=1 shows the traceback
        import os

        if os.environ.get("SACLAB_DEBUG"):
            raise
        print(f"saclab {name}: internal error: {type(e).__name__}: {e} (SACLAB_DEBUG=1 shows where)".splitlines()[0],
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "COMMANDS"]
