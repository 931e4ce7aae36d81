"""A shared study's database calls, retried while the database is briefly unreachable.

A database that restarts, fails over or drops its connections for a few seconds must not cost
a worker its sweep: each call that fails with a connection-level error (`is_transient`) is
tried again, with a growing pause, for up to the retry window. Past it, or for an error that
retrying cannot fix, the worker stops with a DatabaseError (exit 1) that names the database
without its password; never a traceback.

`DbRetry` also remembers when this worker last saw the database down (or just back): while it
was down, no worker could write its heartbeat, so a heartbeat gone stale then is no sign that
its worker died (`quiet_for`; analyzer.search.base and analyzer.sweep.confirm wait a grace period
after an outage ends before they take other workers' work over, which gives every live worker
a whole grace period to beat again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from analyzer.errors import DatabaseError
from analyzer.store.storage_url import redact, scrub

T = TypeVar("T")
FIRST_PAUSE_S, LONGEST_PAUSE_S = 0.25, 2.0

# What a database that is down, restarting or cutting connections raises (through SQLAlchemy;
# Optuna wraps these in StorageInternalError, with the SQLAlchemy error as its cause).
_TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Whether an error (or the error it was raised from) is one a database that is briefly
    unreachable raises, so that the same call may succeed once it is back."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _TRANSIENT):
            return True
        if isinstance(seen, sa.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__
    return False


def reason(exc: BaseException) -> str:
    """The first line of the database's own message for an error (the driver's, under
    SQLAlchemy's and Optuna's wrappers)."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    text = str(getattr(inner, "orig", None) or inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__


class DbRetry:
    """How one worker reaches one shared database: its calls retried for `window_s`, and when
    it last saw the database fail. `say` tells the user that the database is down and back
    (the runner sets it to its progress messages; only the main thread's calls say anything)."""

    def __init__(self, url: str, window_s: float, say: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.shown = redact(url)
        self.window_s = window_s
        self.say: Callable[[str], None] = say or (lambda text: None)
        self._lock = threading.Lock()
        self._last_outage: float | None = None

    def saw_outage(self) -> None:
        """Note that the database is down (a call failed with a transient error) or has just
        come back (the first call that succeeded after one failed)."""
        with self._lock:
            self._last_outage = time.monotonic()

    def quiet_for(self, seconds: float) -> bool:
        """True when this worker saw the database neither down nor coming back in the last
        `seconds`."""
        with self._lock:
            last = self._last_outage
        return last is None or time.monotonic() - last >= seconds

    def describe(self, exc: BaseException) -> str:
        """An error's database message, without the URL's password."""
        return scrub(reason(exc), self.url)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """`fn()`, tried again while it fails with a transient error, for up to the window; then
        DatabaseError. `what` names the call in that error ('recording a heartbeat', ...)."""
        started: float | None = None
        pause = FIRST_PAUSE_S
        while True:
            try:
                result = fn()
            except Exception as exc:  # only transient errors are retried; the rest re-raised
                if not is_transient(exc):
                    raise
                self.saw_outage()
                now = time.monotonic()
                if started is None:
                    started = now
                    self.say(
                        f"the database at {self.shown} is unreachable ({self.describe(exc)}); "
                        f"retrying for up to {self.window_s:g} s"
                    )
                left = self.window_s - (now - started)
                if left <= 0:
                    raise DatabaseError(
                        f"lost the database at {self.shown} while {what}: unreachable for "
                        f"{now - started:.0f} s ({self.describe(exc)}); what was written before is "
                        "kept in the study",
                        hint="once it is back, run the same command again: the worker rejoins the study",
                    ) from None
                time.sleep(min(pause, left))
                pause = min(2 * pause, LONGEST_PAUSE_S)
                continue
            if started is not None:
                self.saw_outage()  # back now: others' heartbeats are judged from here on
                self.say(f"the database at {self.shown} is back after {time.monotonic() - started:.0f} s")
            return result
