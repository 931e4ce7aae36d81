"""What the `tritune` commands share: the error line on stderr and the Ctrl-C handling of a
measurement. Kept apart from analyzer.cli so that the command modules need not import the group."""

from __future__ import annotations

import contextlib
import signal
from typing import Any, Callable, Iterator

import click

from analyzer.profiler import StopToken


def echo_error(message: str) -> None:
    """Print `error: message` on stderr."""
    click.echo(f"error: {message}", err=True)


@contextlib.contextmanager
def ctrl_c_stops(stop: StopToken, say: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C asks the measurement to stop after the current window (and `say`s so); a
    second one aborts."""

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.set()
        say("\nstopping after the current window (Ctrl-C again to abort)...")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
