"""Shared fixtures: the model repository and one real tritonserver per session, and a real
PostgreSQL. Shared plain helpers (paths, spec writers, run_cli, ...) are in tests/helpers.py."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEMO_MODELS, TEST_MODELS, end_started
from tests.pg import Postgres, postgres_server

# Markers by directory: a test's directory says what it needs. Faults and browser tests run
# against a real server too, so they are integration tests as well.
DIRECTORY_MARKERS = {
    "unit": ("unit",),
    "integration": ("integration",),
    "faults": ("faults", "integration"),
    "browser": ("browser", "integration"),
}
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the directory under tests/ it is in (see DIRECTORY_MARKERS)."""
    for item in items:
        path = Path(str(item.path)).resolve()
        if not path.is_relative_to(TESTS):
            continue
        parts = path.relative_to(TESTS).parts
        for name in DIRECTORY_MARKERS.get(parts[0], ()) if len(parts) > 1 else ():
            item.add_marker(name)


@pytest.fixture(autouse=True)
def ended() -> Iterator[None]:
    """After each test: the processes it started through the helpers ended and their pipes
    closed, and garbage collected, so that a leaked file or connection fails the test that
    leaked it (warnings are errors), not whichever test runs when it is collected."""
    yield
    end_started()
    gc.collect()


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
def triton_server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real tritonserver on free loopback ports with the test models loaded (not `spare`)."""
    from analyzer.server.control import ServerControl
    from analyzer.server.discovery import find_tritonserver
    from analyzer.server.local import LocalServer

    log = tmp_path_factory.mktemp("server") / "server.log"
    # The tokens model logs each request's sequence length here (see tests/models/tokens).
    server = LocalServer(
        find_tritonserver(), model_repo, log, env={"TRITUNE_TOKENS_LOG": str(log.parent / "tokens.log")}
    )
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
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL (Debian's package) on a free loopback port (tests/pg.py): fault tests
    stop and start it, and each leaves it running."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: Postgres) -> str:
    """The URL of that PostgreSQL."""
    return postgres.url
