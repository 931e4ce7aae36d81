"""The `tritune` command line: the only place that prints results or exits.

Every command turns library errors (analyzer.errors) into a one-paragraph message on stderr and
their exit code: 0 ok, 1 runtime failure, 2 bad usage or input, 3 no config met the budget.
Click checks the options' values (exit 2 naming the option); progress is analyzer.cli.progress,
what is printed on stdout analyzer.cli.output, and `profile`'s measuring analyzer.sweep.profile.
This module is the group; the commands live by job in analyzer.cli.profile (`profile`),
analyzer.cli.sweep (`sweep`, `demo`) and analyzer.cli.report (`report`, `dash`).
"""

from __future__ import annotations

from typing import Any

import click
import optuna
import sqlalchemy

from analyzer.cli.common import STORAGE_META, echo_error, environment_error
from analyzer.cli.profile import profile
from analyzer.cli.report import dash, report
from analyzer.cli.restore import restore
from analyzer.cli.sweep import demo, sweep
from analyzer.errors import EXIT_RUNTIME, TrituneError
from analyzer.limits import raise_fd_limit

# Errors from outside tritune that are not bugs: the system refused a file operation, or the
# database failed past what its retry mends. One line and exit 1, never a traceback.
ENVIRONMENT_ERRORS = (OSError, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


class TrituneGroup(click.Group):
    """The `tritune` group. A command returns its exit code; a TrituneError it raises becomes
    its message on stderr and its own exit code, an error of the system or the database exit 1,
    and Ctrl-C exit 130, for every command alike."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command and exit with its code (with the open-file soft limit raised to the
        hard one first: the load generator's connections are budgeted from it)."""
        raise_fd_limit()
        try:
            code = super().invoke(ctx)
        except TrituneError as exc:
            echo_error(str(exc))
            ctx.exit(exc.exit_code)
        except ENVIRONMENT_ERRORS as exc:
            echo_error(environment_error(exc, ctx.meta.get(STORAGE_META)))
            ctx.exit(EXIT_RUNTIME)
        except KeyboardInterrupt:
            echo_error("interrupted")
            ctx.exit(130)
        ctx.exit(code or 0)


@click.group(cls=TrituneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tritune")
def main() -> None:
    """tritune: find the Triton model config with the most throughput inside a latency budget."""


main.add_command(profile)
main.add_command(sweep)
main.add_command(demo)
main.add_command(report)
main.add_command(dash)
main.add_command(restore)


if __name__ == "__main__":  # pragma: no cover
    main()
