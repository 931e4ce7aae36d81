"""The columns of a run's two tables, measurements.csv and configs.csv, in their order: a contract
shared with `tritune profile --format csv|json`, the report and the dashboard, and kept alike by
both table backends (analyzer.store.tables)."""

from __future__ import annotations

# Contract columns first (what reports and downstream users rely on), then the rest of what a
# measurement holds.
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
    "over_budget",
    "budget_bound_ms",
    "over_bound_ms",
    "stalled",
    "verdict",
    "verdict_reason",
    "verdict_proven",  # the verdict was proven (met, or over the budget with the sweep's confidence)
    "phase",  # search | confirm (the confirmation round's re-measurements)
    "confirm_round",
    "send_lag_p50_ms",
    "client_workers",  # load-generator processes
    "client_cpu_pct",  # the generator's CPU, % of one core
    "client_loop_pct",  # the busiest worker's event loop, % of one core
    "client_bound",  # the generator could not hold the load: never capacity (see client_bound_reason)
    "client_bound_reason",
    "bottleneck_step",  # pipelines: the step whose instances were busiest (analyzer.config.pipeline)
    "worst_minute_ms",  # schedules: the budget percentile over the run's worst minute
]

CONFIG_COLUMNS = [
    "config_id",
    "instance_count",
    "max_batch_size",
    "max_queue_delay_us",
    "preferred_batch_size",
    "instance_kind",
    "status",  # ok | failed | pruned
    "error",
    "capacity_rps",
    "capacity_level",
    # met the budget at load.max_level, or the next level was client bound: at least this
    "capacity_lower_bound",
    "p99_ms",  # at the capacity level
    "p50_ms",
    "meets_budget",
    "closest_p99_ms",  # lowest tail latency seen at any level (what to name when nothing meets)
    "levels_measured",
    "load_mode",
    "trial",
    "wall_s",
    "finished_at",
    "bottleneck_step",  # pipelines: the busiest step at the capacity level
    # What the server model predicted for the config before it was measured (strategy: model;
    # blank otherwise): its capacity and interval (analyzer.predict).
    "predicted_capacity_rps",
    "predicted_low_rps",
    "predicted_high_rps",
]

# Each table's file in the run directory.
TABLE_FILES = {"measurements": "measurements.csv", "configs": "configs.csv"}
FIXED_COLUMNS = {"measurements": MEASUREMENT_COLUMNS, "configs": CONFIG_COLUMNS}
