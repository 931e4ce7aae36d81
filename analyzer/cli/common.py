"""What the `tritune` commands share: the error line on stderr, the message of an error from the
system or the database, the --storage option's source, and the signal handling of a measurement
(Ctrl-C, SIGTERM, SIGHUP). Kept apart from analyzer.cli.main so that the command modules need not
import the group."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

import click

from analyzer.measure.levels import StopToken
from analyzer.store.db_retry import reason
from analyzer.store.storage_url import STORAGE_ENV, scrub


def echo_error(message: str) -> None:
    """Print `error: message` on stderr."""
    click.echo(f"error: {message}", err=True)


def environment_error(exc: BaseException, storage: str | None) -> str:
    """The message for an error that is neither tritune's nor the user's input: the system
    refused a file operation (a full disk, a file-size limit, ...), or the database failed in a
    way that retrying cannot mend. Without the storage URL's password."""
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror or exc}{where} (what was measured before is kept)"
    else:
        text = f"the database failed: {reason(exc)}"
    return scrub(text, storage) if storage else text


STORAGE_META = "tritune.storage"  # ctx.meta key (shared by the group): the command's storage URL


def storage_option(storage: str | None) -> bool:
    """Note the running command's storage URL for the group's error messages (which scrub its
    password), and say whether it came from the environment (STORAGE_ENV), not the options."""
    ctx = click.get_current_context()
    ctx.meta[STORAGE_META] = storage
    return ctx.get_parameter_source("storage") is click.core.ParameterSource.ENVIRONMENT


STORAGE_HELP_ENV = f" Or set {STORAGE_ENV} (keeps the URL and its password off the command line)."


# What stops a measurement the way Ctrl-C does: `timeout`, `kill`, `docker stop` and a deleted
# Kubernetes pod send SIGTERM, a closed terminal SIGHUP. Without a handler each of them would
# end tritune at once and leave a running server on a candidate config.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_stop(stop: StopToken, say: Callable[[str], None]) -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGHUP ask the measurement to stop after the current window (and
    `say` so); a second one aborts it, except while the server's configs are being put back
    (`stop.shielding`): that finishes first."""

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.shielding:
            _say(say, f"\n{name}: putting the server's original configs back first; tritune exits when done")
            return
        if stop.requested:
            raise KeyboardInterrupt
        stop.set(signum)
        _say(say, f"\n{name}: stopping after the current window ({name} again to abort)...")

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _say(say: Callable[[str], None], text: str) -> None:
    # After SIGHUP the terminal may be gone: a failed write must not become an exception raised
    # wherever the signal happened to land.
    try:
        say(text)
    except OSError:
        pass
