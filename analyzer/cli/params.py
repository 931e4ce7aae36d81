"""The CLI's own Click parameter types: Click checks each value as it parses the command line
and refuses a bad one with exit 2, naming the option and the value."""

from __future__ import annotations

from typing import Any

import click

POSITIVE = click.FloatRange(min=0, min_open=True)


class WorkersType(click.ParamType):
    """--workers: a whole number >= 1, or 'auto'."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value is None or value == "auto":
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1 or str(number) != str(value).strip():
            self.fail(f"{value!r} is not a whole number >= 1 or 'auto'", param, ctx)
        return number


class LevelsType(click.ParamType):
    """Load levels as a comma-separated list, '1,2,4': numbers > 0 (whole numbers for
    concurrency), in the order given."""

    def __init__(self, integer: bool) -> None:
        self.integer = integer
        self.name = "N,N,..." if integer else "X,X,..."

    def convert(self, value: Any, param: Any, ctx: Any) -> list[float]:
        if isinstance(value, list):
            return value
        text = str(value)
        levels: list[float] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                number = float(part)
            except ValueError:
                self.fail(f"{text!r}: {part!r} is not a number (for example 1,2,4)", param, ctx)
            if number <= 0 or (self.integer and number != int(number)):
                self.fail(
                    f"{text!r}: levels must be {'whole numbers' if self.integer else 'numbers'} > 0",
                    param,
                    ctx,
                )
            levels.append(int(number) if self.integer else number)
        if not levels:
            self.fail("needs at least one level", param, ctx)
        return levels


WORKERS = WorkersType()
WORKERS_HELP = (
    "Load-generator processes, each with its own event loop and connections (default auto: "
    "from the cores and the load asked for)."
)
