"""The EdgePctError tree: every error a user can fix, turned by the CLI into one stderr line and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable


class EdgePctError(Exception):
    """A problem with the user's input or environment; the message names the problem and the fix."""


class ConfigError(EdgePctError):
    """An unknown config key, a value of the wrong type, or an unreadable TOML file."""


class InputFileError(EdgePctError):
    """A missing, unreadable or corrupt input file (checkpoint, annotations, poses, video, model)."""


class MissingDependencyError(EdgePctError):
    """An optional extra (onnxruntime, tensorrt, PyQt6, mediapipe) is not installed."""


class SourceError(EdgePctError):
    """A camera or stream that cannot be opened, or that stopped delivering frames."""


def run_reporting_errors(run: Callable[[], int | None], prog: str) -> int:
    """Call `run` and return its exit code (None counts as 0); an EdgePctError becomes one stderr line
    "PROG: error: MESSAGE" and exit code 2, Ctrl-C "PROG: interrupted" and 130. A file-system error (a read-only
    folder, a path under a file, a full disk) is the user's to fix as well: one line naming the path, exit 2 (the
    writers write to a temporary name first, so nothing half-written stays). The CLI and the benchmark scripts share
    it, so neither shows a user a traceback for input they can fix."""
    try:
        return run() or 0
    except EdgePctError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f" '{e.filename}'" if e.filename else ""
        print(f"{prog}: error: {e.strerror or e}{where}: choose a writable folder with free space, and a path whose "
              "parent is a folder", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if "PytorchStreamWriter" not in str(e):  # torch.save on a full disk or a vanished folder
            raise
        print(f"{prog}: error: could not write a checkpoint ({str(e).splitlines()[0]}): free disk space or choose "
              "another folder", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
