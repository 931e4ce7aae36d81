"""The small text files a user names (sweep specs, request-generator files, traces): read with
a size check first, and decoded as UTF-8, so that a binary or huge file given by mistake is a
clear error naming it (and its first bad byte), never a UnicodeDecodeError or a read of
gigabytes."""

from __future__ import annotations

import os
from pathlib import Path

from analyzer.errors import UsageError

MAX_TEXT_BYTES = 16 * 2**20  # a spec, a generator file or a trace: far larger is not one


def read_text(
    path: str | Path, what: str, error: type[UsageError] = UsageError, limit: int = MAX_TEXT_BYTES
) -> str:
    """The UTF-8 text of the file at `path`, or `error` naming it as `what` (e.g. "a sweep
    spec") and saying why: it cannot be read, it is larger than `limit` bytes, or it is not
    UTF-8 text."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise error(
                f"{path}: {size / 2**20:.1f} MiB, too large for {what} (the limit is "
                f"{limit / 2**20:.0f} MiB)",
                hint="check that the right file was given",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text, so not {what} (byte {exc.start} is 0x{data[exc.start]:02x})",
            hint="check that the right file was given (a binary file, or text saved in another encoding)",
        ) from None


def user_path(text: str | os.PathLike[str]) -> Path:
    """A path as a user wrote it, with ~ and ~user expanded where they can be (an unknown user
    or no home directory leaves it as written: reading it then fails with a clear error)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "Could not determine home directory"
        return Path(text)
