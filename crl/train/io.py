"""Crash-safe file writes for run directories."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory so that a rename inside it survives a power loss (no-op where unsupported)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, *chunks: bytes) -> Path:
    """Atomically replace ``path`` with the concatenation of ``chunks``.

    The data goes to a hidden temp file in the same directory (``.NAME.*.tmp``), is
    flushed and fsynced, renamed over ``path`` with ``os.replace`` and the directory is
    fsynced. Readers see either the old file or the complete new one; on any error the
    temp file is removed and the exception propagates. Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write ``obj`` as JSON (UTF-8, trailing newline) to ``path``; returns ``path``."""
    text = json.dumps(obj, indent=indent, sort_keys=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """Return the JSON value stored in ``path``."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
