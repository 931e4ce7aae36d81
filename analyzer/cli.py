"""The `tritune` command line: the only place that prints results or exits.

Every command turns library errors (analyzer.errors) into a one-paragraph message on stderr and
their exit code: 0 ok, 1 runtime failure, 2 bad usage or input, 3 no config met the budget.
Click checks the options' values (exit 2 naming the option); progress is analyzer.progress,
what is printed on stdout analyzer.output, and `profile`'s measuring analyzer.profile_run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import click

from analyzer.cli_params import POSITIVE, WORKERS, WORKERS_HELP, LevelsType
from analyzer.errors import TrituneError, UsageError
from analyzer.load.input_plan import ORDERS, plan_from_file
from analyzer.load.inputs import parse_shape_args
from analyzer.load.shapes import ARRIVALS, SCHEDULE_FORMS, LoadSpec, parse_schedule
from analyzer.output import format_rows, print_result
from analyzer.profile_run import ProfileRun, profile_model, profile_settings
from analyzer.profiler import StopToken
from analyzer.progress_live import profile_progress, sweep_progress
from analyzer.search.registry import STRATEGY_NAMES
from analyzer.server.endpoint import PROTOCOLS
from analyzer.server.session import open_server
from analyzer.spec import SweepSpec, load_spec
from analyzer.store import RunStore
from analyzer.sweep import SweepOptions, run_sweep


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


@click.group(cls=TrituneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tritune")
def main() -> None:
    """tritune: find the Triton model config with the most throughput inside a latency budget."""


@main.command()
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
    default=0.5,
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
    # Generators are checked before a server starts; data files need the model's inputs.
    input_plan = plan_from_file(input_data, input_order) if input_data else None
    settings = profile_settings(
        window_s=window_s,
        warmup_s=warmup_s,
        max_windows=max_windows,
        stability_pct=stability,
        request_timeout_s=request_timeout_s,
        budget_ms=budget_ms,
    )
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
                knobs = run.knobs
                delay = "-" if knobs.max_queue_delay_us is None else f"{knobs.max_queue_delay_us} us"
                click.echo(
                    f"profiling {model} on {where} over {protocol}: instances {knobs.instance_count}, "
                    f"max_batch_size {knobs.max_batch_size}, queue delay {delay}",
                    err=True,
                )
            if schedule:
                progress.playing(loads[0])
            # From here Ctrl-C stops after the current window (before, it aborts at once), and
            # the progress display runs until the measuring ends.
            measuring.enter_context(ctrl_c_stops(stop, progress.say))
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
        return _schedule_done(run, budget_ms, fmt, timeline, quiet)
    click.echo(format_rows(run.rows(budget_ms), fmt))
    bound = run.client_bound
    if bound:
        _err(
            f"{len(bound)} level(s) were client bound, so their figures describe the load generator, "
            f"not the model: {bound[0].client_bound_reason}"
        )
    if run.stopped:
        _err(f"interrupted: measured {len(run.measurements)} of {len(loads)} levels")
        return 130
    return 0


def _schedule_done(
    run: ProfileRun, budget_ms: float | None, fmt: str, timeline_path: str | None, quiet: bool
) -> int:
    """`profile --schedule`: print the whole run's row, write the timeline."""
    table = run.timeline()
    if table is None:
        _err("interrupted before any request was sent")
        return 130
    click.echo(format_rows(run.rows(budget_ms), fmt))
    if timeline_path:
        table.to_csv(timeline_path, index=False)
        if not quiet:
            click.echo(f"timeline: {timeline_path}", err=True)
    return 130 if run.stopped else 0


def sweep_body(spec: SweepSpec | None, options: SweepOptions, quiet: bool) -> int:
    """Run or resume a sweep with progress and Ctrl-C handling; returns the exit code."""
    stop = StopToken()
    progress = sweep_progress(
        spec.budget_ms if spec else 0.0,
        spec.percentile if spec else 99.0,
        quiet,
        spec.max_trials if spec else None,
        spec.time_budget_s if spec else None,
    )
    with ctrl_c_stops(stop, progress.say), progress:
        result, store = run_sweep(spec, options, events=progress.events(), stop=stop)
    print_result(result, store)
    if result.interrupted:
        return 130
    return result.exit_code


@main.command()
@click.argument("spec_file", required=False, type=click.Path())
@click.option(
    "--url", help="Tune a running server at HOST:PORT (explicit model-control mode) instead of launching one."
)
@click.option("--budget-ms", type=POSITIVE, help="Latency budget in ms (overrides the spec).")
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), help="Search strategy (overrides the spec).")
@click.option(
    "--max-trials", type=click.IntRange(min=1), help="Most configs to measure (overrides the spec)."
)
@click.option(
    "--time-budget", "time_budget_s", type=float, help="Stop starting new configs after this many seconds."
)
@click.option("--protocol", type=click.Choice(PROTOCOLS), help="Protocol for requests (overrides the spec).")
@click.option(
    "--out", type=click.Path(), help="Directory under which the run directory is created (default reports/)."
)
@click.option("--resume", "resume", type=click.Path(), help="Continue the sweep in this run directory.")
@click.option("--server-port", type=int, help="HTTP port of the launched server (gRPC = +1, metrics = +2).")
@click.option("--workers", type=WORKERS, default=None, help=WORKERS_HELP + " Overrides load.workers.")
@click.option(
    "--storage",
    help="Share the sweep through this database (an SQLAlchemy URL, e.g. "
    "postgresql+psycopg://user:pass@host/db): start the same command on many machines, each with "
    "its own server, and they split the configs between them.",
)
@click.option("--study", help="The shared study's name (with --storage; default 'tritune').")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def sweep(
    spec_file: str | None,
    url: str | None,
    budget_ms: float | None,
    strategy: str | None,
    max_trials: int | None,
    time_budget_s: float | None,
    protocol: str | None,
    out: str | None,
    resume: str | None,
    server_port: int | None,
    workers: int | None,
    storage: str | None,
    study: str | None,
    quiet: bool,
) -> int:
    """Sweep the configs of SPEC_FILE and write the best config.pbtxt (exit 3: none met the budget)."""

    if spec_file is None and resume is None:
        raise UsageError("give a sweep spec (SPEC.yaml), or --resume RUN_DIR")
    if study is not None and storage is None:
        raise UsageError("--study names a shared study: give its --storage URL too")
    if storage is not None and resume is not None:
        raise UsageError(
            "a shared study resumes by running the same command again (--storage, --study); "
            "leave out --resume"
        )
    spec = load_spec(spec_file, url=url) if spec_file else None
    overrides = dict(
        url=url,
        budget_ms=budget_ms,
        strategy=strategy,
        max_trials=max_trials,
        time_budget_s=time_budget_s,
        protocol=protocol,
    )
    if spec is not None:
        spec = spec.with_overrides(**overrides)
    elif resume and any(
        v is not None for k, v in overrides.items() if k not in ("max_trials", "time_budget_s")
    ):
        raise UsageError(
            "with --resume alone only --max-trials, --time-budget and --workers may change; "
            "pass the spec to compare"
        )
    if spec is None and resume:
        # Resume from the run's own spec, with a larger trial or time budget if asked.
        from analyzer.sweep import _resume_spec  # local: only needed here

        spec = _resume_spec(RunStore.open(resume), None).with_overrides(
            max_trials=max_trials, time_budget_s=time_budget_s
        )
    if workers is not None and spec is not None:
        spec = spec.with_overrides(load=dataclasses.replace(spec.load, workers=workers))
    return sweep_body(
        spec,
        SweepOptions(out=out, resume=resume, server_port=server_port, storage=storage, study=study),
        quiet,
    )


@main.command()
@click.option(
    "--out", type=click.Path(), help="Directory under which the run directory is created (default reports/)."
)
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
    from analyzer.search.study import STUDY_NAME
    from analyzer.study_export import export_study

    return str(export_study(storage, study or STUDY_NAME, out).dir)


@main.command()
@click.argument("run_dir", type=click.Path(), required=False)
@click.option("--storage", help="A shared study's database URL (as given to sweep --storage).")
@click.option("--study", help="The shared study's name (default 'tritune').")
@click.option(
    "--out",
    type=click.Path(),
    help="With --storage: where to write the study's run directory (default reports/).",
)
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
@click.option(
    "--out", type=click.Path(), help="With --storage: where its run directory is written (default reports/)."
)
def dash(
    run_dir: str | None, host: str, port: int, storage: str | None, study: str | None, out: str | None
) -> int:
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

    from analyzer.search.study import STUDY_NAME
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
