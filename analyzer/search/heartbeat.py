"""A shared study's heartbeats: a daemon thread that shows, every interval, that this worker is
alive: for the trial it measures (Optuna's `RDBStorage.record_heartbeat`, which other workers'
`fail_stale_trials` reads) and for the confirmation round it runs (its claim's beat,
SharedTables.touch).

A write that fails (the database is briefly unreachable) is tried again a second later and
never ends the thread; a daemon thread never keeps a worker's process alive once it is done or
has failed. Failures, and the first beat after them, are reported to the worker's DbRetry, so
that it knows the database was down (and that others' heartbeats may be stale for that reason,
not because they died).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from analyzer.store.db_retry import DbRetry

RETRY_AFTER_S = 1.0  # a failed beat is tried again this soon, not a whole interval later
JOIN_S = 5.0  # stop() waits this long for a beat in progress (a hung connection is left behind)


class Heartbeat:
    """Calls `beat()` every `interval_s` seconds on a daemon thread until stopped."""

    def __init__(
        self,
        beat: Callable[[], object],
        interval_s: float,
        retry: DbRetry | None = None,
        name: str = "heartbeat",
    ) -> None:
        self._beat = beat
        self.interval_s = interval_s
        self.retry = retry
        self.failures = 0  # beats that failed so far
        self.beats = 0  # beats written so far
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Heartbeat:
        """Start beating (the first beat is written at once); returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating; waits briefly for a beat in progress."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(JOIN_S)

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        failing = False  # the last beat failed
        while not self._stop.is_set():
            try:
                self._beat()
            except Exception as exc:  # noqa: BLE001 - any failure: try again, never die
                self.failures += 1
                failing = True
                if self.retry is not None:
                    self.retry.saw_outage()
                    self.last_error = self.retry.describe(exc)  # no password in it
                else:
                    self.last_error = type(exc).__name__
                wait = min(RETRY_AFTER_S, self.interval_s)
            else:
                if failing and self.retry is not None:
                    self.retry.saw_outage()  # the database is back
                failing = False
                self.beats += 1
                wait = self.interval_s
            self._stop.wait(wait)
