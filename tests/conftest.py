"""Shared fixtures: the repository root, test models, and one real tritonserver per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_MODELS = ROOT / "tests" / "models"
DEMO_MODELS = ROOT / "sweeps" / "demo" / "models"


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository of symlinks: the test models, the demo model, and `spare` (an
    identity model that is never loaded, for not-ready errors)."""
    repo = tmp_path_factory.mktemp("repo")
    for model in TEST_MODELS.iterdir():
        if model.is_dir():
            os.symlink(model, repo / model.name)
    os.symlink(DEMO_MODELS / "demo_mlp", repo / "demo_mlp")
    os.symlink(TEST_MODELS / "identity", repo / "spare")
    return repo


@pytest.fixture(scope="session")
def triton_server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator["object"]:
    """A real tritonserver on free loopback ports with the test models loaded (not `spare`)."""
    from analyzer.server.control import ServerControl
    from analyzer.server.discovery import find_tritonserver
    from analyzer.server.local import LocalServer

    log = tmp_path_factory.mktemp("server") / "server.log"
    # The tokens model logs each request's sequence length here (see tests/models/tokens).
    server = LocalServer(find_tritonserver(), model_repo, log, env={"TRITUNE_TOKENS_LOG": str(log.parent / "tokens.log")})
    server.start()
    try:
        assert server.endpoint is not None
        with ServerControl(server.endpoint, "grpc") as control:
            for name in ("identity", "demo_mlp", "sleepy", "nobatch", "picky", "tokens"):
                control.load_model(name)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL (Debian's package) on a free loopback port, in a temp directory, run by
    an unprivileged user (the `postgres` account when the tests run as root); its SQLAlchemy URL."""
    import glob
    import shutil
    import socket
    import subprocess

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)"
    bindir = Path(found[-1]).parent
    # Not under pytest's temp root: that is private to the test user (mode 0700), and the
    # server's account must reach its directory.
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="tritune-pg-"))
    data = home / "data"
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root; the package's own account runs the server.
        shutil.chown(data, "postgres")
        shutil.chown(home, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd: str) -> None:
        done = subprocess.run([*prefix, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stderr}"

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tritune", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w", "start",
        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "tritune", "tritune")
        yield f"postgresql+psycopg://tritune@127.0.0.1:{port}/tritune"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(home, ignore_errors=True)
