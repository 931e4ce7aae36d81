"""A temporary PostgreSQL from Debian's package, for tests and benchmarks of shared studies:
initdb in a fresh directory, run by an unprivileged account (`postgres` when run as root),
listening on a free loopback port only, removed afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from tests.helpers import free_port


@contextlib.contextmanager
def temporary_postgres(fsync: bool = False) -> Iterator[str]:
    """Start one; yields its SQLAlchemy URL (user and database `tritune`, trust auth).

    fsync is off by default: tests need no durability, and it makes commits cheap. A benchmark
    of database writes turns it on, as a real deployment runs."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)"
    bindir = Path(found[-1]).parent
    # Not under pytest's temp root: that is private to the test user (mode 0700), and the
    # server's account must reach its directory.
    home = Path(tempfile.mkdtemp(prefix="tritune-pg-"))
    data = home / "data"
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root; the package's own account runs the server.
        shutil.chown(data, "postgres")
        shutil.chown(home, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*prefix, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stderr}"

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tritune", "--no-sync")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(home / "log"),
        "-w",
        "start",
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'}",
    )
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "tritune", "tritune")
        yield f"postgresql+psycopg://tritune@127.0.0.1:{port}/tritune"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(home, ignore_errors=True)
