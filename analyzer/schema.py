"""The tables' shared vocabulary: the measured latency percentiles and the column that holds each
(one list for the spec's `percentile` choices, the measurement's fields and every reader of the
tables), and how a boolean cell reads."""

from __future__ import annotations

from typing import Any

PERCENTILES = (50, 90, 95, 99)  # every measurement stores p50_ms ... p99_ms


def percentile_field(percentile: float) -> str:
    """The column (and `Measurement` field) holding `percentile`'s latency, e.g. 95 -> 'p95_ms'.
    A percentile that is not measured is an error, never silently another one."""
    q = int(percentile)
    if q != percentile or q not in PERCENTILES:
        raise ValueError(f"percentile {percentile:g} is not measured; choose one of {list(PERCENTILES)}")
    return f"p{q}_ms"


def csv_true(value: Any) -> bool:
    """A boolean cell of a run table (True, "True", 1, "1.0") as a bool; NaN and blanks are False."""
    return str(value).strip().lower() in ("true", "1", "1.0")
