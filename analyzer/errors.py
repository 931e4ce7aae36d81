"""Exception hierarchy for tritune.

Every error carries the process exit code it maps to, so that library code only raises and
`analyzer.cli.main` is the single place that prints a message and exits. Messages are meant for the
user: they say what is wrong and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NO_CONFIG = 3
# The server could not be given back every original config: it may still serve a candidate.
EXIT_RESTORE = 4


class TrituneError(Exception):
    """Base class: a failure with a user-facing message and an exit code."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(TrituneError):
    """Bad input from the user: flags, files, shapes, names (exit 2)."""

    exit_code = EXIT_USAGE


class SpecError(UsageError):
    """A malformed or invalid sweep spec."""


class ServerNotFoundError(UsageError):
    """No tritonserver binary could be located."""


class PortInUseError(UsageError):
    """A port the user asked for is already taken."""


class ServerUnreachableError(UsageError):
    """Nothing answers at the URL the user gave."""


class ModelNotFoundError(UsageError):
    """The server does not know the model."""


class ModelNotReadyError(UsageError):
    """The model exists but is not loaded/ready."""


class ShapeError(UsageError):
    """Input shapes are missing, unknown or inconsistent with the model."""


class ServerError(TrituneError):
    """The server failed at runtime: died, refused a config, stopped answering (exit 1)."""

    def __init__(self, message: str, *, hint: str | None = None, log_tail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail

    def __str__(self) -> str:
        text = super().__str__()
        if self.log_tail:
            text += "\n  last lines of the server log:\n" + "\n".join(
                "    " + line for line in self.log_tail.splitlines()
            )
        return text


class ServerStartError(ServerError):
    """The local server exited or did not become ready in time."""


class ModelLoadError(ServerError):
    """The server refused to load a model (or a model config)."""


class LoadTimeoutError(ServerError):
    """Loading a model did not finish in time (the server may be hung)."""


class ServerDiedError(ServerError):
    """The server went away while tritune was using it."""


class WriteError(TrituneError):
    """A file of the run could not be written (a full disk, a file size limit, no permission):
    exit 1; what was written before stays whole (analyzer.files)."""

    def __init__(self, path: str | Path, exc: OSError | str, hint: str | None = None) -> None:
        reason = exc if isinstance(exc, str) else exc.strerror or os.strerror(exc.errno or 0) or str(exc)
        super().__init__(
            f"cannot write {path}: {reason}",
            hint=hint
            or "free space on that disk (or raise its limit); what was written before is kept whole",
        )
        self.path = Path(path)


class RestoreError(TrituneError):
    """Some of the server's original configs could not be put back (exit 4)."""

    exit_code = EXIT_RESTORE


class DatabaseError(TrituneError):
    """A shared study's database failed: down for longer than the retry window, or an error
    that retrying cannot fix (exit 1). What was written before is kept in the study."""


class ClaimLostError(TrituneError):
    """A shared study's config (or its confirmation round) was taken over by another worker
    while this one still measured it: its heartbeat went stale. The runner drops the config
    and goes on; the worker that took it over measures it (exit 1 only if it ever escapes)."""


class MeasurementError(TrituneError):
    """A measurement could not be taken (exit 1)."""
