"""`tritune restore RUN_DIR`: put back the original configs a sweep recorded for its running
server (analyzer.server.originals), for when tritune could not do it itself (kill -9, a lost
machine, a server that was unreachable at the end)."""

from __future__ import annotations

import click

from analyzer.cli.common import echo_error
from analyzer.errors import EXIT_RESTORE
from analyzer.server.control import ServerControl
from analyzer.server.endpoint import parse_url
from analyzer.server.originals import Originals, restore_failed_text
from analyzer.store.rundir import RunStore


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--url",
    help="The server's HOST:PORT, when it is no longer where the sweep reached it "
    "(the port of the protocol the sweep used).",
)
def restore(run_dir: str, url: str | None) -> int:
    """Put back the original configs recorded in RUN_DIR on the sweep's server (exit 4: some
    could not be)."""

    store = RunStore.open(run_dir)
    store.lock()  # not while a sweep of this run still changes the server
    try:
        originals = Originals.read(store.path("originals"))
        endpoint = parse_url(url or originals.url, originals.protocol)
        with ServerControl(endpoint, originals.protocol) as control:
            control.check_reachable()
            done: list[str] = []
            failures = originals.restore(control, done.append)
        if failures:
            lines = [f"{name}: {why}" for name, why in failures]
            echo_error(restore_failed_text(lines, store.dir, store.path("originals")))
            return EXIT_RESTORE
        where = endpoint.url(originals.protocol)
        click.echo("\n".join(done) if done else f"the server at {where} serves its original configs already")
        return 0
    finally:
        store.release()
