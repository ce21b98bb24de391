"""Artifact file helpers: atomic writes (temp name, then rename: nothing half-written) and sha256 ids."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_pct.core.errors import InputFileError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def temp_path_beside(path: Path) -> Path:
    """A new, unique, empty file `.<name>.<random>.tmp` in `path`'s folder (created with it): two writers of one
    artifact never share a temporary name, and the final rename stays on one file system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it 0600; an artifact gets the mode any new file would
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """`with atomic_output(p) as tmp: save(tmp)`: the block writes a unique temporary file beside `p`, which
    replaces `p` when the block succeeds and is removed when it fails."""
    tmp = temp_path_beside(Path(path))
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write every file under a unique temporary name first, then rename them all; temp files never outlive a
    failure."""
    tmps: list[Path] = []
    try:
        for p, data in files:
            tmps.append(temp_path_beside(Path(p)))
            tmps[-1].write_bytes(data)
        for (p, _), tmp in zip(files, tmps, strict=True):
            tmp.replace(p)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """One text file, atomically."""
    write_atomic([(Path(path), text.encode())])


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file (recorded in sidecars as the parent artifact's id)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json_artifact(path: Path, what: str, required: set[str], writer: str, fix: str) -> dict[str, Any]:
    """A sidecar / manifest json that must exist, parse and hold `required` keys (as `writer` writes it);
    else InputFileError naming `fix`."""
    if not path.is_file():
        raise InputFileError(f"{what} '{path}' not found: {fix}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(f"{what} '{path}' is corrupt ({e}): {fix}") from e
    missing = sorted(required - set(data)) if isinstance(data, dict) else sorted(required)
    if missing:
        raise InputFileError(f"{what} '{path}' lacks {missing}: it was not written by {writer}; {fix}")
    return data


def check_output_path(path: str | Path, folder: bool = False) -> None:
    """InputFileError (one line, before any work) when `path` cannot be written: a part of it is an existing file,
    it is an existing folder where a file is wanted (or a file where a folder is), or the nearest existing folder
    is not writable. Missing folders are fine (the writers create them)."""
    import os

    from edge_pct.core.errors import InputFileError

    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        want = "a folder" if folder else "a file name"
        raise InputFileError(f"Output '{path}' is {'a file' if folder else 'a folder'}: give {want}")
    existing = path if folder and path.exists() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputFileError(f"Output '{path}': '{existing}' is a file, not a folder: choose a path inside a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputFileError(f"Output '{path}': no permission to write in '{existing}': choose a writable folder")
