"""The run directory and its tables (see DESIGN.md, "Run directory").

measurements.csv has one row per (config, load level) measurement; the column names here are a
contract shared with `tritune profile --format csv|json`, the report and the dashboard.
"""

from __future__ import annotations

import math
from typing import Any

from analyzer.measure import Measurement
from analyzer.modelconfig import Knobs

# Contract columns first (DESIGN.md), then the rest of what a measurement holds.
MEASUREMENT_COLUMNS = [
    "config_id",
    "instance_count",
    "max_batch_size",
    "max_queue_delay_us",
    "load_mode",
    "load_level",
    "throughput_rps",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "requests",
    "errors",
    "avg_batch_size",
    "server_queue_ms",
    "server_compute_ms",
    "meets_budget",
    "max_ms",
    "mean_ms",
    "p99_ci_low_ms",
    "p99_ci_high_ms",
    "error_kinds",
    "windows",
    "stable",
    "duration_s",
    "offered_rps",
    "send_lag_p99_ms",
    "server_requests",
    "server_compute_input_ms",
    "server_compute_infer_ms",
    "server_compute_output_ms",
    "server_cpu_pct",
    "server_rss_mb",
    "gpu_util_pct",
    "gpu_mem_mb",
]


def measurement_row(config_id: str, knobs: Knobs, m: Measurement, meets_budget: bool | None) -> dict[str, Any]:
    """One measurements.csv row: the config's knobs, the measurement and the budget verdict."""
    row: dict[str, Any] = {
        "config_id": config_id,
        "instance_count": knobs.instance_count,
        "max_batch_size": knobs.max_batch_size,
        "max_queue_delay_us": knobs.max_queue_delay_us if knobs.max_queue_delay_us is not None else math.nan,
        "meets_budget": meets_budget,
    }
    row.update(m.row())
    return {col: row.get(col) for col in MEASUREMENT_COLUMNS} | {
        k: v for k, v in row.items() if k not in MEASUREMENT_COLUMNS
    }
