"""`tritune profile`: measure a model as it is configured now, at load levels or over a schedule.

The options are checked here (Click, then the combinations); the measuring is
analyzer.sweep.profile, the progress analyzer.cli.progress_live, what is printed analyzer.cli.output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import click

from analyzer.cli.common import echo_error, signals_stop
from analyzer.cli.output import format_rows
from analyzer.cli.params import POSITIVE, WORKERS, WORKERS_HELP, LevelsType
from analyzer.cli.progress import knobs_text
from analyzer.cli.progress_live import profile_progress
from analyzer.errors import MeasurementError, UsageError
from analyzer.files import write_atomic
from analyzer.load.data import read_data_file
from analyzer.load.input_plan import ORDERS, plan_from_file
from analyzer.load.inputs import parse_shape_args
from analyzer.load.requests import request_set_floor
from analyzer.load.shapes import (
    ARRIVALS,
    DEFAULT_WARMUP_S,
    SCHEDULE_FORMS,
    LoadSpec,
    expected_requests,
    open_loop_problem,
    parse_schedule,
)
from analyzer.measure.levels import StopToken
from analyzer.names import check_name
from analyzer.server.endpoint import PROTOCOLS
from analyzer.server.session import open_server
from analyzer.sweep.profile import ProfileRun, profile_model, profile_settings


@click.command()
@click.option("--model", "-m", required=True, help="Name of the model to measure.")
@click.option("--url", help="HOST:PORT of a running server (the port of --protocol).")
@click.option("--model-repository", type=click.Path(), help="Launch a local tritonserver on this repository.")
@click.option(
    "--concurrency", type=LevelsType(integer=True), help="Closed-loop levels: in-flight requests, e.g. 1,2,4."
)
@click.option(
    "--rate", type=LevelsType(integer=False), help="Open-loop levels: requests per second, e.g. 100,200."
)
@click.option(
    "--arrival",
    type=click.Choice(ARRIVALS),
    default="poisson",
    show_default=True,
    help="Open-loop arrival process.",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="grpc",
    show_default=True,
    help="Protocol for requests.",
)
@click.option(
    "--shape",
    "shapes",
    multiple=True,
    help="Shape for a variable input, NAME:d1,d2 (no batch dim); repeatable.",
)
@click.option(
    "--window-s",
    type=POSITIVE,
    default=None,
    help="Fixed window length in seconds (default: windows sized by requests, 0.25-2 s).",
)
@click.option(
    "--warmup-s",
    type=click.FloatRange(min=0),
    default=DEFAULT_WARMUP_S,
    show_default=True,
    help="Load before measuring starts, in seconds.",
)
@click.option(
    "--max-windows",
    type=click.IntRange(min=3),
    default=10,
    show_default=True,
    help="Windows per level before giving up on stability.",
)
@click.option(
    "--stability",
    type=POSITIVE,
    default=10.0,
    show_default=True,
    help="Windows agree when within this many percent.",
)
@click.option(
    "--request-timeout-s",
    type=POSITIVE,
    default=30.0,
    show_default=True,
    help="A request slower than this counts as a timeout error.",
)
@click.option("--budget-ms", type=POSITIVE, help="Latency budget: adds meets_budget to each row.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--triton-server-path",
    help="tritonserver binary to launch (default: PATH, then the nvidia-pytriton wheel).",
)
@click.option(
    "--server-port",
    type=int,
    help="HTTP port of the launched server (gRPC = +1, metrics = +2); default: free ports.",
)
@click.option("--metrics-port", type=int, help="Prometheus port of a remote server (for its CPU and memory).")
@click.option("--workers", type=WORKERS, default=None, help=WORKERS_HELP)
@click.option(
    "--schedule", help="Play a load schedule once instead of levels: " + ", ".join(SCHEDULE_FORMS) + "."
)
@click.option(
    "--scale",
    type=POSITIVE,
    default=1.0,
    show_default=True,
    help="Multiply the schedule's rates (a trace: replay it this much faster).",
)
@click.option(
    "--max-inflight",
    type=click.IntRange(min=1),
    help="Open loop: at most this many requests in flight; requests due over it wait, and their "
    "latency counts from their schedule.",
)
@click.option(
    "--timeline",
    type=click.Path(dir_okay=False),
    help="With --schedule: write the per-second timeline CSV here.",
)
@click.option(
    "--input-data",
    type=click.Path(dir_okay=False),
    help="Requests to send: perf_analyzer's JSON format, .npy/.npz files, or a YAML file of "
    "generators (inputs: and input_data:, as in a sweep spec). Default: one random request.",
)
@click.option(
    "--input-order",
    type=click.Choice(ORDERS),
    default="cycle",
    show_default=True,
    help="With --input-data: send the requests in turn, or draw them at random.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def profile(
    model: str,
    url: str | None,
    model_repository: str | None,
    concurrency: list[int] | None,
    rate: list[float] | None,
    arrival: str,
    protocol: str,
    shapes: Sequence[str],
    window_s: float | None,
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

    check_name(model, "model", "-m")
    if concurrency and rate:
        raise UsageError("give --concurrency or --rate, not both")
    if schedule and (concurrency or rate):
        raise UsageError("give --schedule or load levels (--concurrency, --rate), not both")
    if timeline and not schedule:
        raise UsageError("--timeline needs --schedule (a timeline is of one scheduled run)")
    if max_inflight and concurrency:
        raise UsageError(
            "--max-inflight caps an open loop (--rate or --schedule); --concurrency is already a cap"
        )
    if schedule:
        try:
            loads = [
                LoadSpec(
                    "rate",
                    scale,
                    arrival=arrival,
                    schedule=parse_schedule(schedule),
                    max_inflight=max_inflight,
                )
            ]
        except ValueError as exc:
            raise UsageError(f"--schedule: {exc}", hint="forms: " + ", ".join(SCHEDULE_FORMS)) from None
    elif rate:
        loads = [LoadSpec("rate", r, arrival=arrival, max_inflight=max_inflight) for r in rate]
    else:
        loads = [LoadSpec("concurrency", c) for c in concurrency or [1, 2, 4, 8]]
    shape_map = parse_shape_args(shapes)
    # Generators and a data file's form and size are checked before a server starts; whether
    # the data fits the model's inputs needs the model's metadata.
    input_plan = plan_from_file(input_data, input_order) if input_data else None
    if input_plan is not None and input_plan.file is not None:
        read_data_file(input_plan.file)
    request_set_floor(input_plan, shape_map)
    settings = profile_settings(
        window_s=window_s,
        warmup_s=warmup_s,
        max_windows=max_windows,
        stability_pct=stability,
        request_timeout_s=request_timeout_s,
        budget_ms=budget_ms,
    )
    too_many = _open_loop_problem(loads, settings.horizon_s, schedule)
    if too_many:
        raise UsageError(too_many)
    stop = StopToken()
    progress = profile_progress(len(loads), settings, quiet)
    with (
        open_server(
            protocol=protocol,
            url=url,
            model_repository=model_repository,
            triton_server_path=triton_server_path,
            server_port=server_port,
            metrics_port=metrics_port,
        ) as session,
        contextlib.ExitStack() as measuring,
    ):

        def ready(run: ProfileRun) -> None:
            if not quiet:
                where = (
                    f"local server {session.url} (log {session.log_path})" if session.local else session.url
                )
                click.echo(f"profiling {model} on {where} over {protocol}: {knobs_text(run.knobs)}", err=True)
            if schedule:
                progress.playing(loads[0])
            # From here Ctrl-C stops after the current window (before, it aborts at once), and
            # the progress display runs until the measuring ends.
            measuring.enter_context(signals_stop(stop, progress.say))
            measuring.enter_context(progress)

        run = profile_model(
            session,
            model,
            loads,
            settings,
            shapes=shape_map,
            input_plan=input_plan,
            workers=workers,
            on_ready=ready,
            on_window=progress.window,
            on_level=progress.level,
            on_second=progress.second,
            stop=stop,
        )
    if schedule:
        return _schedule_done(run, budget_ms, fmt, timeline, quiet, stop.exit_code)
    if run.failed is not None and not run.measurements:
        raise _worker_died(run, "nothing had been measured yet")
    click.echo(format_rows(run.rows(budget_ms), fmt))
    bound = run.client_bound
    if bound:
        echo_error(
            f"{len(bound)} level(s) were client bound, so their figures describe the load generator, "
            f"not the model: {bound[0].client_bound_reason}"
        )
    if run.failed is not None:
        raise _worker_died(run, f"the {len(run.measurements)} level(s) measured before it are printed above")
    if run.stopped:
        echo_error(f"interrupted: measured {len(run.measurements)} of {len(loads)} levels")
        return stop.exit_code
    return 0


def _open_loop_problem(loads: list[LoadSpec], horizon_s: float, schedule: str | None) -> str:
    """Why an open-loop level would make too many send times ('' when none would): a schedule
    at its scale, or a steady rate over the longest a level runs."""
    for load in loads:
        if load.schedule is not None:
            problem = open_loop_problem(
                expected_requests(load.schedule, load.level),
                f"--schedule {schedule} at --scale {load.level:g}",
                "shorten it, lower its rates or --scale",
            )
        elif not load.closed_loop:
            problem = open_loop_problem(
                load.level * horizon_s,
                f"--rate {load.level:g} for up to {horizon_s:g} s (the warm-up and every window)",
                "lower the rate, or give fewer --max-windows or a shorter --window-s",
            )
        else:
            continue
        if problem:
            return problem
    return ""


def _worker_died(run: ProfileRun, kept: str) -> MeasurementError:
    """The error that ends a profile whose load worker process died (exit 1)."""
    assert run.failed is not None
    return MeasurementError(
        f"{run.failed.message}; {kept}",
        hint="a load worker is one of tritune's own processes, so something outside it ended it (a kill, "
        "or the kernel's out-of-memory killer: see dmesg); run the profile again, or with --workers 1 "
        "to send the load from tritune's own process",
    )


def _schedule_done(
    run: ProfileRun,
    budget_ms: float | None,
    fmt: str,
    timeline_path: str | None,
    quiet: bool,
    stopped_code: int,
) -> int:
    """`profile --schedule`: print the whole run's row, write the timeline; `stopped_code` when
    a signal stopped it."""
    if run.failed is not None:
        raise _worker_died(run, "a schedule is one measurement, so nothing of it is kept")
    table = run.timeline()
    if table is None:
        echo_error("interrupted before any request was sent")
        return stopped_code
    click.echo(format_rows(run.rows(budget_ms), fmt))
    if timeline_path:
        write_atomic(timeline_path, table.to_csv(index=False))
        if not quiet:
            click.echo(f"timeline: {timeline_path}", err=True)
    return stopped_code if run.stopped else 0
