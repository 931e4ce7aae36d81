"""`tritune report` and `tritune dash`: the HTML report and the interactive dashboard of a run
directory, or of a shared study read from its database (analyzer.sweep.export)."""

from __future__ import annotations

import logging
import time

import click

from analyzer.cli.common import STORAGE_HELP_ENV, storage_option
from analyzer.errors import UsageError
from analyzer.names import check_name
from analyzer.store.rundir import RunStore
from analyzer.store.storage_url import STORAGE_ENV, scrub


def _study_dir(
    run_dir: str | None, storage: str | None, study: str | None, out: str | None
) -> tuple[str, str | None]:
    """The run directory to read: RUN_DIR, or a shared study's, written from its database; and
    the storage URL it came from (None: RUN_DIR). A RUN_DIR given wins over a storage URL from
    the environment (STORAGE_ENV)."""
    if storage_option(storage) and run_dir is not None:
        storage = None
        storage_option(None)
    if storage is None:
        if study is not None or out is not None:
            raise UsageError(
                f"--study and --out read a shared study: give its --storage URL too (or set {STORAGE_ENV})"
            )
        if run_dir is None:
            raise UsageError("give a run directory (RUN_DIR), or --storage URL --study NAME")
        return run_dir, None
    if run_dir is not None:
        raise UsageError("give a run directory or --storage, not both")
    if study is not None:
        check_name(study, "study", "--study")  # it names the run directory written from the database
    from analyzer.search.study import STUDY_NAME
    from analyzer.sweep.export import export_study

    return str(export_study(storage, study or STUDY_NAME, out).dir), storage


@click.command()
@click.argument("run_dir", type=click.Path(), required=False)
@click.option(
    "--storage",
    envvar=STORAGE_ENV,
    help="A shared study's database URL (as given to sweep --storage)." + STORAGE_HELP_ENV,
)
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

    directory, storage = _study_dir(run_dir, storage, study, out)
    # A shared study's export already wrote its report.
    path = write_report(directory) if storage is None else RunStore(directory).path("report")
    if storage is not None:
        summary = RunStore.open_readonly(directory).read_summary() or {}
        best = summary.get("best")
        click.echo(f"run directory: {directory}")
        click.echo(f"best config: {best['config_id']}" if best else "no config met the budget")
    click.echo(f"report: {path}")
    return 0


@click.command()
@click.argument("run_dir", type=click.Path(), required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=int, default=8050, show_default=True, help="Port to serve on.")
@click.option(
    "--storage",
    envvar=STORAGE_ENV,
    help="Serve a shared study from its database URL (as given to sweep --storage)." + STORAGE_HELP_ENV,
)
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

    directory, storage = _study_dir(run_dir, storage, study, out)
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
    from analyzer.sweep.export import export_study

    def loop() -> None:
        while True:
            time.sleep(every_s)
            try:
                export_study(storage, study or STUDY_NAME, out)
            except Exception as exc:  # noqa: BLE001 - keep serving what was read last
                click.echo(f"could not refresh the study: {scrub(str(exc), storage)}", err=True)

    threading.Thread(target=loop, daemon=True, name="study-refresh").start()
