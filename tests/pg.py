"""A temporary PostgreSQL from Debian's package, for tests and benchmarks of shared studies:
initdb in a fresh directory, run by an unprivileged account (`postgres` when run as root),
listening on a free loopback port only, removed afterwards. The fault tests stop it and start it
again on the same data directory and port (`Postgres.stop`, `Postgres.start`): a database that
is briefly unreachable."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import free_port


class Postgres:
    """One server on its own data directory and loopback port; `url` is its SQLAlchemy URL
    (user and database `tritune`, trust auth: any password is accepted)."""

    def __init__(self, fsync: bool = False) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert found, "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)"
        self.bindir = Path(found[-1]).parent
        self.fsync = fsync
        # Not under pytest's temp root: that is private to the test user (mode 0700), and the
        # server's account must reach its directory.
        self.home = Path(tempfile.mkdtemp(prefix="tritune-pg-"))
        self.data = self.home / "data"
        self.data.mkdir()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses root; the package's own account runs the server.
            shutil.chown(self.data, "postgres")
            shutil.chown(self.home, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.url = f"postgresql+psycopg://tritune@127.0.0.1:{self.port}/tritune"

    def _run(self, *cmd: str) -> None:
        done = subprocess.run(
            [*self.prefix, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stderr}"

    def create(self) -> None:
        """initdb, start, and create the `tritune` database."""
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "tritune", "--no-sync"
        )
        self.start()
        self._run(
            str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "tritune", "tritune"
        )

    def start(self) -> None:
        """Start the server on its data directory and port (returns once it accepts connections)."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.home / "log"),
            "-w",
            "start",
            "-o",
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self.fsync else 'off'}",
        )

    def stop(self) -> None:
        """Stop it as an operator would (fast: open connections are cut, their transactions rolled back)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop it if it runs, and delete its directory."""
        subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(fsync: bool = False) -> Iterator[Postgres]:
    """Start one; yields it (removed afterwards).

    fsync is off by default: tests need no durability, and it makes commits cheap. A benchmark
    of database writes turns it on, as a real deployment runs."""
    server = Postgres(fsync)
    try:
        server.create()
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def temporary_postgres(fsync: bool = False) -> Iterator[str]:
    """Start one; yields its SQLAlchemy URL (see postgres_server)."""
    with postgres_server(fsync) as server:
        yield server.url
