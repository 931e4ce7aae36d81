"""The `tritune` command line: the only place that prints results or exits.

Every command turns library errors (analyzer.errors) into a one-paragraph message on stderr and
their exit code: 0 ok, 1 runtime failure, 2 bad usage or input, 3 no config met the budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import signal
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import click
import pandas as pd

from analyzer.errors import TrituneError, UsageError
from analyzer.load.inputs import parse_shape_args
from analyzer.load.requests import ORDERS, plan_from_file
from analyzer.load.selfcheck import FIX
from analyzer.load.shapes import ARRIVALS, SCHEDULE_FORMS, LoadSpec, parse_schedule
from analyzer.measure import Measurement, WindowStat, level_text
from analyzer.modelconfig import knobs_of
from analyzer.profiler import MeasureSettings, Probe, StopToken, measure_levels, run_schedule, window_requests_for
from analyzer.timeline import timeline as build_timeline
from analyzer.server.endpoint import PROTOCOLS
from analyzer.server.session import open_server, prepare_model
from analyzer.capacity import CLIENT_BOUND, Verdict, budget_verdict, required_requests
from analyzer.runner import Events, SweepResult
from analyzer.pipeline import JointCandidate
from analyzer.space import Candidate
from analyzer.spec import STRATEGIES, SweepSpec, load_spec
from analyzer.rows import measurement_row
from analyzer.store import MEASUREMENT_COLUMNS, RUN_FILES, RunStore
from analyzer.sweep import SweepOptions, run_sweep

TABLE_COLUMNS = [
    "load_mode", "load_level", "throughput_rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
    "p99_ci_high_ms", "errors", "avg_batch_size", "server_queue_ms", "server_compute_ms",
    "server_cpu_pct", "client_cpu_pct", "stable", "client_bound",
]


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


WORKERS = WorkersType()
WORKERS_HELP = ("Load-generator processes, each with its own event loop and connections (default auto: "
                "from the cores and the load asked for).")


def _err(message: str) -> None:
    click.echo(f"error: {message}", err=True)


class TrituneGroup(click.Group):
    """The `tritune` group. A command returns its exit code; a TrituneError it raises becomes
    its message on stderr and its own exit code, and Ctrl-C exit 130, for every command alike."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command and exit with its code."""
        try:
            code = super().invoke(ctx)
        except TrituneError as exc:
            _err(str(exc))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _err("interrupted")
            ctx.exit(130)
        ctx.exit(code or 0)


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
        window = self.settings.longest_window_s
        per_level = self.settings.warmup_s + window * (self.settings.min_windows + 1)
        left = left_levels * per_level + max(0, self.settings.max_windows - index) * window * (0 if stable else 1)
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
        if m.client_bound:
            flag += f"  CLIENT BOUND ({m.client_bound_reason})"
        click.echo(
            f"  -> {m.throughput_rps:.1f} req/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms "
            f"(95% CI {m.p99_ci_low_ms:.2f}..{m.p99_ci_high_ms:.2f}), errors {m.errors}{flag}",
            err=True,
        )


@click.group(cls=TrituneGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--window-s", type=float, default=None, help="Fixed window length in seconds (default: windows sized by requests, 0.25-2 s).")
@click.option("--warmup-s", type=float, default=0.5, show_default=True, help="Load before measuring starts, in seconds.")
@click.option("--max-windows", type=int, default=10, show_default=True, help="Windows per level before giving up on stability.")
@click.option("--stability", type=float, default=10.0, show_default=True, help="Windows agree when within this many percent.")
@click.option("--request-timeout-s", type=float, default=30.0, show_default=True, help="A request slower than this counts as a timeout error.")
@click.option("--budget-ms", type=float, help="Latency budget: adds meets_budget to each row.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True, help="Output format.")
@click.option("--triton-server-path", help="tritonserver binary to launch (default: PATH, then the nvidia-pytriton wheel).")
@click.option("--server-port", type=int, help="HTTP port of the launched server (gRPC = +1, metrics = +2); default: free ports.")
@click.option("--metrics-port", type=int, help="Prometheus port of a remote server (for its CPU and memory).")
@click.option("--workers", type=WORKERS, default=None, help=WORKERS_HELP)
@click.option("--schedule", help="Play a load schedule once instead of levels: " + ", ".join(SCHEDULE_FORMS) + ".")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Multiply the schedule's rates (a trace: replay it this much faster).")
@click.option("--max-inflight", type=click.IntRange(min=1), help="Open loop: at most this many requests in flight; "
              "requests due over it wait, and their latency counts from their schedule.")
@click.option("--timeline", type=click.Path(dir_okay=False), help="With --schedule: write the per-second timeline CSV here.")
@click.option("--input-data", type=click.Path(dir_okay=False),
              help="Requests to send: perf_analyzer's JSON format, .npy/.npz files, or a YAML file of generators "
                   "(inputs: and input_data:, as in a sweep spec). Default: one random request.")
@click.option("--input-order", type=click.Choice(ORDERS), default="cycle", show_default=True,
              help="With --input-data: send the requests in turn, or draw them at random.")
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
    workers: int | None,
    schedule: str | None,
    scale: float,
    max_inflight: int | None,
    timeline: str | None,
    input_data: str | None,
    input_order: str,
    quiet: bool,
) -> int:
    """Measure a model as it is configured now, at the given load levels (or over a schedule)."""

    if concurrency and rate:
        raise UsageError("give --concurrency or --rate, not both")
    if schedule and (concurrency or rate):
        raise UsageError("give --schedule or load levels (--concurrency, --rate), not both")
    if timeline and not schedule:
        raise UsageError("--timeline needs --schedule (a timeline is of one scheduled run)")
    if max_inflight and concurrency:
        raise UsageError("--max-inflight caps an open loop (--rate or --schedule); --concurrency is already a cap")
    plan = None
    if schedule:
        try:
            plan = LoadSpec("rate", scale, arrival=arrival, schedule=parse_schedule(schedule), max_inflight=max_inflight)
        except ValueError as exc:
            raise UsageError(f"--schedule: {exc}", hint="forms: " + ", ".join(SCHEDULE_FORMS)) from None
    if budget_ms is not None and budget_ms <= 0:
        raise UsageError(f"--budget-ms must be > 0, not {budget_ms:g}")
    if (window_s is not None and window_s <= 0) or warmup_s < 0 or max_windows < 3 or stability <= 0 or request_timeout_s <= 0:
        raise UsageError("need --window-s > 0, --warmup-s >= 0, --max-windows >= 3, --stability > 0, --request-timeout-s > 0")
    if plan is not None:
        loads = [plan]
    elif rate:
        loads = [LoadSpec("rate", r, arrival=arrival, max_inflight=max_inflight) for r in parse_levels(rate, "--rate", False)]
    else:
        loads = [LoadSpec("concurrency", c) for c in parse_levels(concurrency or "1,2,4,8", "--concurrency", True)]
    shape_map = parse_shape_args(shapes)
    # Generators are checked before a server starts; data files need the model's inputs.
    input_plan = plan_from_file(input_data, input_order) if input_data else None
    settings = MeasureSettings(
        window_s=window_s,
        warmup_s=warmup_s,
        max_windows=max_windows,
        tolerance=stability / 100.0,
        request_timeout_s=request_timeout_s,
        drain_s=request_timeout_s,
        min_requests=required_requests(0, 99.0, 0.99),
        window_requests=window_requests_for(99.0, 0.99),
        budget_ms=budget_ms,
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
        info = prepare_model(session, model, shape_map, load=session.local is not None, plan=input_plan)
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

        if plan is not None:
            with ctrl_c_stops(stop), probe:
                return _play_schedule(session, model, info, probe, plan, settings, stop, workers, knobs, budget_ms,
                                      fmt, timeline, quiet)
        with ctrl_c_stops(stop), probe:
            asyncio.run(
                measure_levels(
                    protocol, session.url, model, info.requests, probe, loads, settings,
                    on_window=progress.window, on_level=on_level, stop=stop, workers=workers,
                    local_server=session.local is not None,
                )
            )
    # The sweep's own budget rule (p99 proven under the budget with 99 % confidence).
    rows = [
        measurement_row("current", knobs, m, None if budget_ms is None else budget_verdict(m, budget_ms).meets)
        for m in results
    ]
    click.echo(format_rows(rows, fmt))
    bound = [m for m in results if m.client_bound]
    if bound:
        _err(f"{len(bound)} level(s) were client bound, so their figures describe the load generator, "
             f"not the model: {bound[0].client_bound_reason}")
    if stop.requested:
        _err(f"interrupted: measured {len(results)} of {len(loads)} levels")
        return 130
    return 0


class SweepProgress:
    """Live sweep progress on stderr: one line per config and per load level, with time left."""

    def __init__(self, budget_ms: float, percentile: float, quiet: bool) -> None:
        self.budget_ms = budget_ms
        self.label = f"p{percentile:g}"
        self.quiet = quiet
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self.best: tuple[float, str] | None = None  # best capacity so far and its config

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.done == 0 or self.total <= self.done:
            return f"elapsed {elapsed:.0f} s"
        left = elapsed / self.done * (self.total - self.done)
        return f"elapsed {elapsed:.0f} s, ~{left:.0f} s left"

    def events(self) -> Events:
        """The runner callbacks that print this progress."""
        return Events(
            config_start=self.config_start, level=self.level, config_done=self.config_done, message=self.message,
            confirm_start=self.confirm_start, confirm=self.confirm, playing=self.playing,
        )

    def confirm_start(self, cands: list[Candidate], rounds: int) -> None:
        """The confirmation round begins."""
        self._echo(f"[confirm] re-measuring the top {len(cands)} at their capacity levels, {rounds} interleaved "
                   f"rounds: {', '.join(c.config_id for c in cands)}  ({self._eta()})")

    def confirm(self, cand: Candidate, round_: int, m: Measurement, verdict: Verdict) -> None:
        """One confirmation measurement finished."""
        value = {"p50": m.p50_ms, "p90": m.p90_ms, "p95": m.p95_ms}.get(self.label, m.p99_ms)
        self._echo(f"    round {round_} {cand.config_id} at {level_text(m.load_mode, m.load_level)}: {m.throughput_rps:8.1f} req/s  "
                   f"{self.label} {value:8.2f} ms  {'meets' if verdict.meets else verdict.status}")

    def _echo(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=True)

    def config_start(self, cand: Candidate, number: int, total: int) -> None:
        """A config is about to be loaded."""
        self.total = max(total, number)
        parts = cand.parts if isinstance(cand, JointCandidate) else (("", cand),)
        knobs = "; ".join(
            (f"{name}: " if name else "") + f"instances {c.instance_count}, max_batch_size {c.max_batch_size}, queue delay "
            + ("-" if c.max_queue_delay_us is None else f"{c.max_queue_delay_us} us") for name, c in parts)
        self._echo(f"[config {number}/{self.total}] {cand.config_id}: {knobs}  ({self._eta()}"
                   + (f"; best so far {self.best[1]} at {self.best[0]:.1f} req/s)" if self.best else ")"))

    def level(self, cand: Candidate, m: Measurement, verdict: Verdict) -> None:
        """A load level was measured."""
        value = {"p50": m.p50_ms, "p90": m.p90_ms, "p95": m.p95_ms}.get(self.label, m.p99_ms)
        status = "meets" if verdict.meets else verdict.status
        if verdict.status == CLIENT_BOUND:
            status = verdict.reason  # names the fix: more --workers or a separate load machine
        worst = f"  worst minute {m.worst_minute_ms:.2f} ms" if math.isfinite(m.worst_minute_ms) else ""
        where = level_text(m.load_mode, m.load_level)
        self._echo(f"    {where}: {m.throughput_rps:8.1f} req/s  {self.label} {value:8.2f} ms{worst}"
                   f"  {status}  ({self._eta()})")

    def playing(self, cand: Candidate, load: LoadSpec, elapsed: float, length: float, finished: int) -> None:
        """A schedule is being played: a line every 10 s of it."""
        if int(elapsed) % 10 == 0 and elapsed < length:
            self._echo(f"    {load.describe()}: {elapsed:4.0f} / {length:.0f} s played, {finished} requests finished "
                       f"({self._eta()})")

    def config_done(self, cand: Candidate, row: dict[str, Any]) -> None:
        """A config finished (measured, pruned or failed)."""
        self.done += 1
        if row["status"] != "failed" and row["capacity_rps"] > 0 and (self.best is None or row["capacity_rps"] > self.best[0]):
            self.best = (float(row["capacity_rps"]), str(row["config_id"]))
        if row["status"] == "failed":
            self._echo(f"    -> failed: {row['error']}")
        elif row["capacity_rps"] > 0:
            self._echo(f"    -> capacity {'>= ' if row.get('capacity_lower_bound') else ''}{row['capacity_rps']:.1f} req/s at "
                       f"{level_text(row['load_mode'], row['capacity_level'])} ({self.label} {row['p99_ms']:.2f} ms){'  [pruned]' if row['status'] == 'pruned' else ''}"
                       + (f"; bottleneck step: {row['bottleneck_step']}" if row.get("bottleneck_step") else ""))
        else:
            self._echo(f"    -> no load level met the budget of {self.budget_ms:g} ms "
                       f"(best {self.label} {row['closest_p99_ms']:.2f} ms)")

    def message(self, text: str) -> None:
        """A note from the runner."""
        self._echo(f"    note: {text}")


def _play_schedule(session: Any, model: str, info: Any, probe: Any, plan: LoadSpec, settings: MeasureSettings,
                   stop: StopToken, workers: int | None, knobs: Any, budget_ms: float | None, fmt: str,
                   timeline_path: str | None, quiet: bool) -> int:
    """`profile --schedule`: play it once, print the whole run's row, write the timeline."""
    if not quiet:
        click.echo(f"playing {plan.describe()}: {plan.duration_s:.0f} s", err=True)

    def on_second(elapsed: float, length: float, finished: int) -> None:
        if not quiet and (int(elapsed) % 5 == 0 or elapsed >= length):
            click.echo(f"    {elapsed:5.0f} / {length:.0f} s: {finished} requests finished", err=True)

    played = asyncio.run(run_schedule(session.protocol, session.url, model, info.requests, probe, plan, settings,
                                      on_second=on_second, stop=stop, workers=workers,
                                      local_server=session.local is not None))
    if played is None:
        _err("interrupted before any request was sent")
        return 130
    table = build_timeline(played.records, played.start, played.duration_s)
    m = played.measurement
    row = measurement_row("current", knobs, m, None if budget_ms is None else budget_verdict(m, budget_ms).meets)
    click.echo(format_rows([row], fmt))
    if timeline_path:
        table.to_csv(timeline_path, index=False)
        if not quiet:
            click.echo(f"timeline: {timeline_path}", err=True)
    return 130 if stop.requested else 0


def print_result(result: SweepResult, store: RunStore) -> None:
    """The answer and where everything is (stdout)."""
    summary = result.summary
    best = summary.get("best")
    click.echo(f"run directory: {store.dir}")
    click.echo(f"configs tried: {summary['configs_tried']} ({summary['configs_failed']} failed, "
               f"{summary.get('configs_pruned', 0)} pruned) in {summary['wall_s']:.0f} s"
               + (f"; stopped: {result.stop_reason}" if result.stop_reason else ""))
    if best and best.get("models"):
        click.echo(f"best config: {best['config_id']}")
        for name, knobs in best["models"].items():
            delay = knobs["max_queue_delay_us"]
            click.echo(f"  {name}: instances {knobs['instance_count']}, max_batch_size {knobs['max_batch_size']}, "
                       f"max_queue_delay_us {'-' if delay is None else delay}  ({knobs.get('config_pbtxt')})")
        if best.get("bottleneck_step"):
            click.echo(f"  bottleneck step at capacity: {best['bottleneck_step']}")
        for name, t in (best.get("targets") or {}).items():
            # Several models: each one's own outcome at the chosen level, against its own budget.
            click.echo(f"  {name}: {t['throughput_rps']:.1f} req/s at {level_text(summary['load_mode'], t['load_level'])}, "
                       f"p99 {t['p99_ms']:.2f} ms (its budget {t['budget_ms']:g} ms){'' if t['meets'] else ' NOT met'}")
    elif best:
        delay = best["max_queue_delay_us"]
        click.echo(
            f"best config: {best['config_id']} (instances {best['instance_count']}, max_batch_size "
            f"{best['max_batch_size']}, max_queue_delay_us {'-' if delay is None else delay})"
        )
        bound = ">= " if best.get("capacity_lower_bound") else ""
        click.echo(
            f"  {bound}{best['throughput_rps']:.1f} req/s with p{summary['percentile']:g} {best['p99_ms']:.2f} ms "
            f"(budget {summary['budget_ms']:g} ms) at {level_text(best['load_mode'], best['load_level'])}"
            + (" (a lower bound: the budget still held at the highest level measured, load.max_level or the "
               "load generator's limit)" if bound else "")
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
        click.echo(f"no config met the budget of {summary['budget_ms']:g} ms" + (
            f"; closest: {close['config_id']} with p{summary['percentile']:g} {close['best_p99_ms']:.2f} ms" if close else ""))
    if summary.get("client_bound_levels"):
        click.echo(f"note: {summary['client_bound_levels']} level(s) were client bound (the load generator could "
                   f"not offer them; they never count as capacity): {FIX}", err=True)
    for name in ("summary", "measurements", "configs", "study", "report", "server_log"):
        path = store.path(name)
        if path.exists():
            click.echo(f"  {RUN_FILES[name]}: {path}")
    if result.interrupted:
        click.echo(f"stopped before the end; continue with: tritune sweep --resume {store.dir}", err=True)


def sweep_body(spec: SweepSpec | None, options: SweepOptions, quiet: bool) -> int:
    """Run or resume a sweep with progress and Ctrl-C handling; returns the exit code."""
    stop = StopToken()
    budget = spec.budget_ms if spec else 0.0
    progress = SweepProgress(budget, spec.percentile if spec else 99.0, quiet)
    with ctrl_c_stops(stop):
        result, store = run_sweep(spec, options, events=progress.events(), stop=stop)
    print_result(result, store)
    if result.interrupted:
        return 130
    return result.exit_code


@main.command()
@click.argument("spec_file", required=False, type=click.Path())
@click.option("--url", help="Tune a running server at HOST:PORT (explicit model-control mode) instead of launching one.")
@click.option("--budget-ms", type=float, help="Latency budget in ms (overrides the spec).")
@click.option("--strategy", type=click.Choice(STRATEGIES), help="Search strategy (overrides the spec).")
@click.option("--max-trials", type=int, help="Most configs to measure (overrides the spec).")
@click.option("--time-budget", "time_budget_s", type=float, help="Stop starting new configs after this many seconds.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), help="Protocol for requests (overrides the spec).")
@click.option("--out", type=click.Path(), help="Directory under which the run directory is created (default reports/).")
@click.option("--resume", "resume", type=click.Path(), help="Continue the sweep in this run directory.")
@click.option("--server-port", type=int, help="HTTP port of the launched server (gRPC = +1, metrics = +2).")
@click.option("--workers", type=WORKERS, default=None, help=WORKERS_HELP + " Overrides load.workers.")
@click.option("--storage", help="Share the sweep through this database (an SQLAlchemy URL, e.g. "
              "postgresql+psycopg://user:pass@host/db): start the same command on many machines, each with its "
              "own server, and they split the configs between them.")
@click.option("--study", help="The shared study's name (with --storage; default 'tritune').")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def sweep(spec_file: str | None, url: str | None, budget_ms: float | None, strategy: str | None,
          max_trials: int | None, time_budget_s: float | None, protocol: str | None, out: str | None,
          resume: str | None, server_port: int | None, workers: int | None, storage: str | None,
          study: str | None, quiet: bool) -> int:
    """Sweep the configs of SPEC_FILE and write the best config.pbtxt (exit 3: none met the budget)."""

    if spec_file is None and resume is None:
        raise UsageError("give a sweep spec (SPEC.yaml), or --resume RUN_DIR")
    if study is not None and storage is None:
        raise UsageError("--study names a shared study: give its --storage URL too")
    if storage is not None and resume is not None:
        raise UsageError("a shared study resumes by running the same command again (--storage, --study); "
                         "leave out --resume")
    if budget_ms is not None and budget_ms <= 0:
        raise UsageError(f"--budget-ms must be > 0, not {budget_ms:g}")
    if max_trials is not None and max_trials < 1:
        raise UsageError(f"--max-trials must be >= 1, not {max_trials}")
    spec = load_spec(spec_file, url=url) if spec_file else None
    overrides = dict(url=url, budget_ms=budget_ms, strategy=strategy, max_trials=max_trials,
                     time_budget_s=time_budget_s, protocol=protocol)
    if spec is not None:
        spec = spec.with_overrides(**overrides)
    elif resume and any(v is not None for k, v in overrides.items() if k not in ("max_trials", "time_budget_s")):
        raise UsageError("with --resume alone only --max-trials, --time-budget and --workers may change; "
                         "pass the spec to compare")
    if spec is None and resume:
        # Resume from the run's own spec, with a larger trial or time budget if asked.
        from analyzer.sweep import _resume_spec  # local: only needed here

        spec = _resume_spec(RunStore.open(resume), None).with_overrides(max_trials=max_trials, time_budget_s=time_budget_s)
    if workers is not None and spec is not None:
        spec = spec.with_overrides(load=dataclasses.replace(spec.load, workers=workers))
    return sweep_body(spec, SweepOptions(out=out, resume=resume, server_port=server_port, storage=storage,
                                         study=study), quiet)


@main.command()
@click.option("--out", type=click.Path(), help="Directory under which the run directory is created (default reports/).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def demo(out: str | None, quiet: bool) -> int:
    """The main job on the embedded default: sweep the bundled demo model on a local server."""

    spec_path = Path(__file__).resolve().parent.parent / "sweeps" / "demo.yaml"
    if not spec_path.is_file():
        raise UsageError(
            f"the demo spec is missing ({spec_path})",
            hint="run tritune from a clone of the repository installed with `pip install -e '.[server]'`",
        )
    return sweep_body(load_spec(spec_path), SweepOptions(out=out), quiet)


def _study_dir(run_dir: str | None, storage: str | None, study: str | None, out: str | None) -> str:
    """The run directory to read: RUN_DIR, or a shared study's, written from its database."""
    if storage is None:
        if study is not None or out is not None:
            raise UsageError("--study and --out read a shared study: give its --storage URL too")
        if run_dir is None:
            raise UsageError("give a run directory (RUN_DIR), or --storage URL --study NAME")
        return run_dir
    if run_dir is not None:
        raise UsageError("give a run directory or --storage, not both")
    from analyzer.search.base import STUDY_NAME
    from analyzer.study_export import export_study

    return str(export_study(storage, study or STUDY_NAME, out).dir)


@main.command()
@click.argument("run_dir", type=click.Path(), required=False)
@click.option("--storage", help="A shared study's database URL (as given to sweep --storage).")
@click.option("--study", help="The shared study's name (default 'tritune').")
@click.option("--out", type=click.Path(), help="With --storage: where to write the study's run directory (default reports/).")
def report(run_dir: str | None, storage: str | None, study: str | None, out: str | None) -> int:
    """(Re)build RUN_DIR/report.html from a run directory (also one still being written), or
    write a shared study's run directory (tables, summary, best config, report) from its database."""

    from analyzer.report import write_report

    directory = _study_dir(run_dir, storage, study, out)
    # A shared study's export already wrote its report.
    path = write_report(directory) if storage is None else RunStore(directory).path("report")
    if storage is not None:
        summary = RunStore.open_readonly(directory).read_summary() or {}
        best = summary.get("best")
        click.echo(f"run directory: {directory}")
        click.echo(f"best config: {best['config_id']}" if best else "no config met the budget")
    click.echo(f"report: {path}")
    return 0


@main.command()
@click.argument("run_dir", type=click.Path(), required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=int, default=8050, show_default=True, help="Port to serve on.")
@click.option("--storage", help="Serve a shared study from its database URL (as given to sweep --storage).")
@click.option("--study", help="The shared study's name (default 'tritune').")
@click.option("--out", type=click.Path(), help="With --storage: where its run directory is written (default reports/).")
def dash(run_dir: str | None, host: str, port: int, storage: str | None, study: str | None, out: str | None) -> int:
    """Serve the interactive report of RUN_DIR (follows a sweep that is still running), or of a
    shared study, refreshed from its database every few seconds while its workers run."""

    from analyzer.server.local import port_is_free
    from dashboards import create_app

    directory = _study_dir(run_dir, storage, study, out)
    if storage is not None:
        _follow_study(storage, study, out)
    app = create_app(directory)
    if not port_is_free(port, host):
        raise UsageError(f"port {port} on {host} is already in use", hint="choose another --port")
    click.echo(f"tritune dashboard for {directory}: http://{host}:{port}/  (Ctrl-C to stop)", err=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    app.run(host=host, port=port, debug=False)
    return 0


def _follow_study(storage: str, study: str | None, out: str | None, every_s: float = 5.0) -> None:
    """Re-export a shared study's run directory in the background (the dashboard follows its
    files, as it follows a local sweep)."""
    import threading

    from analyzer.search.base import STUDY_NAME
    from analyzer.study_export import export_study

    def loop() -> None:
        while True:
            time.sleep(every_s)
            try:
                export_study(storage, study or STUDY_NAME, out)
            except Exception as exc:  # noqa: BLE001 - keep serving what was read last
                click.echo(f"could not refresh the study: {exc}", err=True)

    threading.Thread(target=loop, daemon=True, name="study-refresh").start()


if __name__ == "__main__":  # pragma: no cover
    main()
