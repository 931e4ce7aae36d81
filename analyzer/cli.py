"""The `tritune` command line: the only place that prints results or exits.

Every command turns library errors (analyzer.errors) into a one-paragraph message on stderr and
their exit code: 0 ok, 1 runtime failure, 2 bad usage or input, 3 no config met the budget.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import click
import pandas as pd

from analyzer.errors import EXIT_USAGE, TrituneError, UsageError
from analyzer.load.inputs import parse_shape_args
from analyzer.load.shapes import ARRIVALS, LoadSpec
from analyzer.measure import Measurement, WindowStat
from analyzer.modelconfig import knobs_of
from analyzer.profiler import MeasureSettings, Probe, StopToken, measure_levels
from analyzer.server.endpoint import PROTOCOLS
from analyzer.server.session import open_server, prepare_model
from analyzer.store import MEASUREMENT_COLUMNS, measurement_row

TABLE_COLUMNS = [
    "load_mode", "load_level", "throughput_rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
    "p99_ci_high_ms", "errors", "avg_batch_size", "server_queue_ms", "server_compute_ms",
    "server_cpu_pct", "stable",
]


def _err(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def run_guarded(fn: Callable[[], int | None]) -> None:
    """Run a command body, mapping TrituneError to its message and exit code."""
    try:
        code = fn() or 0
    except TrituneError as exc:
        _err(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    sys.exit(code)


@contextmanager
def ctrl_c_stops(stop: StopToken) -> Iterator[None]:
    """First Ctrl-C asks the measurement to stop after the current window; a second one aborts."""

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.set()
        click.echo("\nstopping after the current window (Ctrl-C again to abort)...", err=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def parse_levels(text: str, option: str, integer: bool) -> list[float]:
    """Parse '1,2,4' into positive numbers (whole numbers for concurrency)."""
    levels: list[float] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"{option} {text!r}: {part!r} is not a number", hint=f"for example {option} 1,2,4") from None
        if value <= 0 or (integer and value != int(value)):
            kind = "whole numbers" if integer else "numbers"
            raise UsageError(f"{option} {text!r}: levels must be {kind} > 0")
        levels.append(int(value) if integer else value)
    if not levels:
        raise UsageError(f"{option} needs at least one level")
    return levels


def format_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """Render measurement rows as a table, JSON or CSV (same column names as measurements.csv)."""
    if fmt == "json":
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        return json.dumps([{k: clean(v) for k, v in r.items()} for r in rows], indent=2)
    frame = pd.DataFrame(rows, columns=MEASUREMENT_COLUMNS if rows else MEASUREMENT_COLUMNS)
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if frame.empty:
        return "(no measurements)"
    shown = frame[TABLE_COLUMNS].copy()
    return shown.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")


class ProgressPrinter:
    """Live progress lines on stderr: level, window, throughput, p99, time left."""

    def __init__(self, total_levels: int, settings: MeasureSettings, quiet: bool) -> None:
        self.total = total_levels
        self.settings = settings
        self.quiet = quiet
        self.done = 0

    def window(self, load: LoadSpec, index: int, stat: WindowStat, stable: bool) -> None:
        """One line per measurement window."""
        if self.quiet:
            return
        left_levels = self.total - self.done - 1
        per_level = self.settings.warmup_s + self.settings.window_s * (self.settings.min_windows + 1)
        left = left_levels * per_level + max(0, self.settings.max_windows - index) * self.settings.window_s * (0 if stable else 1)
        click.echo(
            f"[{self.done + 1}/{self.total}] {load.describe():<24} window {index:>2}: "
            f"{stat.throughput_rps:8.1f} req/s  p99 {stat.p99_ms:8.2f} ms  "
            f"{'stable' if stable else 'settling'}  (at most ~{left:.0f} s left)",
            err=True,
        )

    def level(self, m: Measurement) -> None:
        """One line per finished level."""
        self.done += 1
        if self.quiet:
            return
        flag = "" if m.stable else "  UNSTABLE (windows never agreed; numbers are from the last 3)"
        click.echo(
            f"  -> {m.throughput_rps:.1f} req/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms "
            f"(95% CI {m.p99_ci_low_ms:.2f}..{m.p99_ci_high_ms:.2f}), errors {m.errors}{flag}",
            err=True,
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tritune")
def main() -> None:
    """tritune: find the Triton model config with the most throughput inside a latency budget."""


@main.command()
@click.option("--model", "-m", required=True, help="Name of the model to measure.")
@click.option("--url", help="HOST:PORT of a running server (the port of --protocol).")
@click.option("--model-repository", type=click.Path(), help="Launch a local tritonserver on this repository.")
@click.option("--concurrency", "concurrency", help="Closed-loop levels: in-flight requests, e.g. 1,2,4.")
@click.option("--rate", "rate", help="Open-loop levels: requests per second, e.g. 100,200.")
@click.option("--arrival", type=click.Choice(ARRIVALS), default="poisson", show_default=True, help="Open-loop arrival process.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="grpc", show_default=True, help="Protocol for requests.")
@click.option("--shape", "shapes", multiple=True, help="Shape for a variable input, NAME:d1,d2 (no batch dim); repeatable.")
@click.option("--window-s", type=float, default=2.0, show_default=True, help="Length of one measurement window in seconds.")
@click.option("--warmup-s", type=float, default=1.0, show_default=True, help="Load before measuring starts, in seconds.")
@click.option("--max-windows", type=int, default=10, show_default=True, help="Windows per level before giving up on stability.")
@click.option("--stability", type=float, default=10.0, show_default=True, help="Windows agree when within this many percent.")
@click.option("--request-timeout-s", type=float, default=30.0, show_default=True, help="A request slower than this counts as a timeout error.")
@click.option("--budget-ms", type=float, help="Latency budget: adds meets_budget to each row.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True, help="Output format.")
@click.option("--triton-server-path", help="tritonserver binary to launch (default: PATH, then the nvidia-pytriton wheel).")
@click.option("--server-port", type=int, help="HTTP port of the launched server (gRPC = +1, metrics = +2); default: free ports.")
@click.option("--metrics-port", type=int, help="Prometheus port of a remote server (for its CPU and memory).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def profile(
    model: str,
    url: str | None,
    model_repository: str | None,
    concurrency: str | None,
    rate: str | None,
    arrival: str,
    protocol: str,
    shapes: Sequence[str],
    window_s: float,
    warmup_s: float,
    max_windows: int,
    stability: float,
    request_timeout_s: float,
    budget_ms: float | None,
    fmt: str,
    triton_server_path: str | None,
    server_port: int | None,
    metrics_port: int | None,
    quiet: bool,
) -> None:
    """Measure a model as it is configured now, at the given load levels."""

    def body() -> int:
        if concurrency and rate:
            raise UsageError("give --concurrency or --rate, not both")
        if budget_ms is not None and budget_ms <= 0:
            raise UsageError(f"--budget-ms must be > 0, not {budget_ms:g}")
        if window_s <= 0 or warmup_s < 0 or max_windows < 3 or stability <= 0 or request_timeout_s <= 0:
            raise UsageError("need --window-s > 0, --warmup-s >= 0, --max-windows >= 3, --stability > 0, --request-timeout-s > 0")
        if rate:
            loads = [LoadSpec("rate", r, arrival=arrival) for r in parse_levels(rate, "--rate", False)]
        else:
            loads = [LoadSpec("concurrency", c) for c in parse_levels(concurrency or "1,2,4,8", "--concurrency", True)]
        shape_map = parse_shape_args(shapes)
        settings = MeasureSettings(
            window_s=window_s,
            warmup_s=warmup_s,
            max_windows=max_windows,
            tolerance=stability / 100.0,
            request_timeout_s=request_timeout_s,
            drain_s=request_timeout_s,
        )
        stop = StopToken()
        progress = ProgressPrinter(len(loads), settings, quiet)
        results: list[Measurement] = []
        with open_server(
            protocol=protocol,
            url=url,
            model_repository=model_repository,
            triton_server_path=triton_server_path,
            server_port=server_port,
            metrics_port=metrics_port,
        ) as session:
            info = prepare_model(session, model, shape_map, load=session.local is not None)
            knobs = knobs_of(info.config)
            if not quiet:
                where = f"local server {session.url} (log {session.log_path})" if session.local else session.url
                click.echo(
                    f"profiling {model} on {where} over {protocol}: instances {knobs.instance_count}, "
                    f"max_batch_size {knobs.max_batch_size}, queue delay "
                    f"{'-' if knobs.max_queue_delay_us is None else str(knobs.max_queue_delay_us) + ' us'}",
                    err=True,
                )
            probe = Probe(session.endpoint, protocol, model, session.pid)

            def on_level(m: Measurement) -> None:
                results.append(m)
                progress.level(m)

            with ctrl_c_stops(stop), probe:
                asyncio.run(
                    measure_levels(
                        protocol, session.url, model, info.specs, probe, loads, settings,
                        on_window=progress.window, on_level=on_level, stop=stop,
                    )
                )
        rows = [
            measurement_row(
                "current", knobs, m,
                None if budget_ms is None else bool(m.errors == 0 and m.p99_ms <= budget_ms),
            )
            for m in results
        ]
        click.echo(format_rows(rows, fmt))
        if stop.requested:
            _err(f"interrupted: measured {len(results)} of {len(loads)} levels")
            return 130
        return 0

    run_guarded(body)


if __name__ == "__main__":  # pragma: no cover
    main()
