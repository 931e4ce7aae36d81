"""Files that are written whole or not at all.

A file tritune rewrites (spec.yaml, summary.json, base and best configs, the originals record,
a table cut back on resume) goes to a temporary file beside it, is flushed to disk, and only
then renamed over the old one: a crash or a full disk leaves either the old file or the new one,
never an empty or half-written one. A write that fails becomes a `WriteError` (exit 1) naming the
file and the reason, with the temporary file removed.
"""

from __future__ import annotations

import os
from pathlib import Path

from analyzer.errors import WriteError


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Replace `path` with `data` atomically (temporary file, fsync, rename, fsync of the
    directory); returns the path. Raises WriteError when the disk refuses it."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    # The pid keeps two processes writing the same file (a report and a sweep) off each other's
    # temporary file; the rename decides which whole version stays.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        sync_dir(path.parent)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass  # never made, or already gone: nothing to clean
        raise WriteError(path, exc) from None
    return path


def sync_dir(directory: Path) -> None:
    """fsync a directory, so that a rename in it survives a power cut (a no-op where the
    platform cannot open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself has happened
    finally:
        os.close(fd)
