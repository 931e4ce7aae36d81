"""What the CLI prints on stdout: measurement rows as a table, JSON or CSV (the column names of
measurements.csv), and a sweep's answer with where its files are."""

from __future__ import annotations

import json
import math
from typing import Any

import click
import pandas as pd

from analyzer.load.selfcheck import FIX
from analyzer.stats.measurement import level_text
from analyzer.store.rundir import MEASUREMENT_COLUMNS, RUN_FILES, RunStore
from analyzer.sweep.loop import SweepResult

TABLE_COLUMNS = [
    "load_mode",
    "load_level",
    "throughput_rps",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p99_ci_high_ms",
    "errors",
    "avg_batch_size",
    "server_queue_ms",
    "server_compute_ms",
    "server_cpu_pct",
    "client_cpu_pct",
    "stable",
    "client_bound",
]


def format_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """Render measurement rows as a table, JSON or CSV (same column names as measurements.csv)."""
    if fmt == "json":

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        return json.dumps([{k: clean(v) for k, v in r.items()} for r in rows], indent=2)
    frame = pd.DataFrame(rows, columns=MEASUREMENT_COLUMNS)
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if frame.empty:
        return "(no measurements)"
    shown = frame[TABLE_COLUMNS].copy()
    return shown.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")


def print_result(result: SweepResult, store: RunStore) -> None:
    """The answer and where everything is (stdout)."""
    summary = result.summary
    best = summary.get("best")
    click.echo(f"run directory: {store.dir}")
    click.echo(
        f"configs tried: {summary['configs_tried']} ({summary['configs_failed']} failed, "
        f"{summary.get('configs_pruned', 0)} pruned) in {summary['wall_s']:.0f} s"
        + (f"; stopped: {result.stop_reason}" if result.stop_reason else "")
    )
    if best and best.get("models"):
        click.echo(f"best config: {best['config_id']}")
        for name, knobs in best["models"].items():
            delay = knobs["max_queue_delay_us"]
            click.echo(
                f"  {name}: instances {knobs['instance_count']}, "
                f"max_batch_size {knobs['max_batch_size']}, "
                f"max_queue_delay_us {'-' if delay is None else delay}  ({knobs.get('config_pbtxt')})"
            )
        if best.get("bottleneck_step"):
            click.echo(f"  bottleneck step at capacity: {best['bottleneck_step']}")
        for name, t in (best.get("targets") or {}).items():
            # Several models: each one's own outcome at the chosen level, against its own budget.
            click.echo(
                f"  {name}: {t['throughput_rps']:.1f} req/s at "
                f"{level_text(summary['load_mode'], t['load_level'])}, p{summary['percentile']:g} "
                f"{t['latency_ms']:.2f} ms "
                f"(its budget {t['budget_ms']:g} ms){'' if t['meets'] else ' NOT met'}"
            )
    elif best:
        delay = best["max_queue_delay_us"]
        click.echo(
            f"best config: {best['config_id']} (instances {best['instance_count']}, max_batch_size "
            f"{best['max_batch_size']}, max_queue_delay_us {'-' if delay is None else delay})"
        )
        bound = ">= " if best.get("capacity_lower_bound") else ""
        click.echo(
            f"  {bound}{best['throughput_rps']:.1f} req/s with p{summary['percentile']:g} "
            f"{best['latency_ms']:.2f} ms "
            f"(budget {summary['budget_ms']:g} ms) at {level_text(best['load_mode'], best['load_level'])}"
            + (
                " (a lower bound: the budget still held at the highest level measured, load.max_level or the "
                "load generator's limit)"
                if bound
                else ""
            )
        )
        ci = best.get("capacity_ci_rps")
        if ci and best.get("confirmed_rps") is not None:
            click.echo(f"  confirmed: {best['confirmed_rps']:.1f} req/s, 95 % CI {ci[0]:.1f}..{ci[1]:.1f}")
        ties = summary.get("tie_set") or []
        if ties:
            click.echo(f"tie set (within noise of the best): {', '.join(ties)}")
        if summary.get("choice_reason"):
            click.echo(f"  why: {summary['choice_reason']}")
        if not best.get("models"):
            click.echo(f"  config.pbtxt: {best['config_pbtxt']}")
    else:
        close = summary.get("closest")
        click.echo(
            f"no config met the budget of {summary['budget_ms']:g} ms"
            + (
                f"; closest: {close['config_id']} with p{summary['percentile']:g} "
                f"{close['best_latency_ms']:.2f} ms"
                if close
                else ""
            )
        )
    if summary.get("client_bound_levels"):
        click.echo(
            f"note: {summary['client_bound_levels']} level(s) were client bound (the load generator "
            f"could not offer them; they never count as capacity): {FIX}",
            err=True,
        )
    for name in ("summary", "measurements", "configs", "study", "report", "server_log"):
        path = store.path(name)
        if path.exists():
            click.echo(f"  {RUN_FILES[name]}: {path}")
    if result.interrupted:
        click.echo(f"stopped before the end; continue with: tritune sweep --resume {store.dir}", err=True)
