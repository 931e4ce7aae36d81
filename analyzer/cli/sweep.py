"""`tritune sweep` and `tritune demo`: run, resume or join a sweep (analyzer.sweep.setup) with its
progress display and Ctrl-C handling, and print its result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from analyzer.cli.common import STORAGE_HELP_ENV, echo_error, signals_stop, storage_option
from analyzer.cli.output import print_result
from analyzer.cli.params import POSITIVE, WORKERS, WORKERS_HELP
from analyzer.cli.progress_live import sweep_progress
from analyzer.errors import EXIT_RESTORE, UsageError
from analyzer.measure.levels import StopToken
from analyzer.names import check_name
from analyzer.server.endpoint import PROTOCOLS
from analyzer.server.originals import restore_failed_text
from analyzer.spec.spec import STRATEGIES, SweepSpec, load_spec
from analyzer.store.rundir import RunStore
from analyzer.store.storage_url import STORAGE_ENV
from analyzer.sweep.setup import SweepOptions, run_sweep

# The bundled demo's spec, in the clone this package is installed from (analyzer/cli/ is two
# levels below the repository's root).
DEMO_SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "demo.yaml"


def sweep_body(spec: SweepSpec | None, options: SweepOptions, quiet: bool) -> int:
    """Run or resume a sweep with progress and signal handling (Ctrl-C, SIGTERM, SIGHUP stop it
    after the current window); returns the exit code. Originals of a running server that could
    not be put back are printed even with --quiet, and exit 4."""
    stop = StopToken()
    progress = sweep_progress(
        spec.budget_ms if spec else 0.0,
        spec.percentile if spec else 99.0,
        quiet,
        spec.max_trials if spec else None,
        spec.time_budget_s if spec else None,
    )
    with signals_stop(stop, progress.say), progress:
        result, store = run_sweep(spec, options, events=progress.events(), stop=stop)
    print_result(result, store)
    if result.restore_failures:
        echo_error(restore_failed_text(result.restore_failures, store.dir, store.path("originals")))
        return EXIT_RESTORE
    if result.interrupted:
        return stop.exit_code
    return result.exit_code


@click.command()
@click.argument("spec_file", required=False, type=click.Path())
@click.option(
    "--url", help="Tune a running server at HOST:PORT (explicit model-control mode) instead of launching one."
)
@click.option("--budget-ms", type=POSITIVE, help="Latency budget in ms (overrides the spec).")
@click.option("--strategy", type=click.Choice(STRATEGIES), help="Search strategy (overrides the spec).")
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
    envvar=STORAGE_ENV,
    help="Share the sweep through this database (an SQLAlchemy URL, e.g. "
    "postgresql+psycopg://user:pass@host/db): start the same command on many machines, each with "
    "its own server, and they split the configs between them." + STORAGE_HELP_ENV,
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

    from_env = storage_option(storage)
    if spec_file is None and resume is None:
        raise UsageError("give a sweep spec (SPEC.yaml), or --resume RUN_DIR")
    if study is not None and storage is None:
        raise UsageError(f"--study names a shared study: give its --storage URL too (or set {STORAGE_ENV})")
    if study is not None:
        check_name(study, "study", "--study")  # it names a run directory, before the database is opened
    if storage is not None and resume is not None:
        raise UsageError(
            "a shared study resumes by running the same command again (--storage, --study); "
            "leave out --resume",
            hint=f"{STORAGE_ENV} is set: unset it to resume a run directory of one worker"
            if from_env
            else None,
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
        from analyzer.sweep.setup import resume_spec  # local: only needed here

        spec = resume_spec(RunStore.open(resume), None).with_overrides(
            max_trials=max_trials, time_budget_s=time_budget_s
        )
    if workers is not None and spec is not None:
        spec = spec.with_overrides(load=dataclasses.replace(spec.load, workers=workers))
    return sweep_body(
        spec,
        SweepOptions(out=out, resume=resume, server_port=server_port, storage=storage, study=study),
        quiet,
    )


@click.command()
@click.option(
    "--out", type=click.Path(), help="Directory under which the run directory is created (default reports/)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def demo(out: str | None, quiet: bool) -> int:
    """The main job on the embedded default: sweep the bundled demo model on a local server."""

    spec_path = DEMO_SPEC
    if not spec_path.is_file():
        raise UsageError(
            f"the demo spec is missing ({spec_path})",
            hint="run tritune from a clone of the repository installed with `pip install -e '.[server]'`",
        )
    return sweep_body(load_spec(spec_path), SweepOptions(out=out), quiet)
