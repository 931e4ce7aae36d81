"""What many tests share, as plain names to import (tests/conftest.py holds the fixtures and
imports its paths from here): the repository's paths, a fast load for sweeps, spec writers, the
CLI runner, a free loopback port, a Measurement builder, and a shared study's worker processes and
database rows."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
import yaml
from click.testing import CliRunner, Result

from analyzer.stats.measurement import Measurement

ROOT = Path(__file__).resolve().parent.parent
TEST_MODELS = ROOT / "tests" / "models"
DEMO_MODELS = ROOT / "sweeps" / "demo" / "models"

# Stability is not what the sweep tests are about: on two busy CI cores the throughput of short
# windows swings by more than 10 %, which (rightly) flags levels unstable and made a config
# that should meet the budget miss it. A looser tolerance and more windows keep them on topic.
FAST_LOAD: dict[str, Any] = {
    "mode": "concurrency",
    "min_level": 1,
    "max_level": 2,
    "window_s": 0.3,
    "warmup_s": 0.2,
    "max_windows": 8,
    "stability_pct": 30,
    "refine_steps": 0,
}

# What a test spec has unless it says otherwise. The confirmation round has its own test
# (tests/integration/test_decisive.py), so the others leave it out.
SPEC_DEFAULTS: dict[str, Any] = {"budget_ms": 100, "strategy": "grid", "load": FAST_LOAD, "confirm_top": 0}


def write_spec(directory: Path, name: str = "spec.yaml", **data: Any) -> Path:
    """Write a sweep spec of SPEC_DEFAULTS updated with `data` to directory/name."""
    path = directory / name
    path.write_text(yaml.safe_dump({**SPEC_DEFAULTS, **data}))
    return path


def spec_writer(**defaults: Any) -> Callable[..., Path]:
    """A write_spec with other defaults (on top of SPEC_DEFAULTS; a call's keys still win)."""

    def write(directory: Path, name: str = "spec.yaml", **data: Any) -> Path:
        return write_spec(directory, name, **{**defaults, **data})

    return write


def run_cli(*args: str | Path) -> Result:
    """Run `tritune ARGS` in-process; an unexpected exception is raised, not turned into exit 1."""
    from analyzer.cli.main import main  # here, not at the top: conftest imports this module for every test

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def quiet_sweep(*args: str | Path) -> Result:
    """`tritune sweep ARGS --quiet`, checked to print no traceback."""
    result = run_cli("sweep", *args, "--quiet")
    assert "Traceback" not in result.output
    return result


def expect_error(code: int, *args: str | Path) -> str:
    """Run `tritune ARGS`, check that it exits with `code` and no traceback; its stderr."""
    result = run_cli(*args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.stderr


# Processes the helpers started: the tests' teardown (tests/conftest.py, `ended`) ends any
# still running and closes their pipes, so no test leaves a process or an open pipe behind.
STARTED: list[subprocess.Popen[str]] = []


def started(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Register a process for the teardown that ends it (see STARTED)."""
    STARTED.append(proc)
    return proc


T = TypeVar("T")

# What a test opened in its own process that holds database connections (a storage, shared
# tables): closed at its teardown too, so a test's connections never outlive it.
OPENED: list[Any] = []


def opened(thing: T) -> T:
    """Register something with a close() method (or an RDB storage) for the teardown."""
    OPENED.append(thing)
    return thing


def end_started() -> None:
    """Kill what is still running of STARTED, reap it, and close its pipes; close OPENED."""
    while OPENED:
        thing = OPENED.pop()
        engine = getattr(thing, "engine", None)
        if hasattr(thing, "close"):
            thing.close()
        elif engine is not None:
            engine.dispose()  # Optuna's RDBStorage: no close(), its engine holds the pool
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def cli_process(*args: str | Path, stdout: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """`tritune ARGS` as a process of its own (to be killed or signalled as a user's would be),
    its stderr a pipe to read (read_until) and its stdout discarded unless asked for."""
    return started(
        subprocess.Popen(
            [sys.executable, "-m", "analyzer.cli", *map(str, args)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    )


def read_until(proc: subprocess.Popen[str], found: str | Callable[[str], bool], timeout: float) -> list[str]:
    """The process's stderr lines up to the first that holds `found` (or that `found` accepts),
    failing the test when the process ends first or `timeout` passes (checked at each line)."""
    assert proc.stderr is not None
    match = found if callable(found) else lambda line: found in line
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if match(line):
            return lines
        assert time.monotonic() < deadline, f"no {found!r} within {timeout} s:\n{''.join(lines)}"
    raise AssertionError(f"the process ended (rc {proc.wait()}) before {found!r}:\n{''.join(lines)}")


def free_port() -> int:
    """A loopback port that was free a moment ago (nothing listens on it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_request(protocol: str, url: str, model: str, tensors: Any, timeout_s: float = 10.0) -> str:
    """Send one inference request with `tensors`; "ok", or the kind its error is classified as."""
    from analyzer.load.clients import make_client
    from analyzer.load.generator import classify_error

    client = make_client(protocol, url, model, tensors, timeout_s=timeout_s)
    try:
        await client.infer()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the tests look at the classification
        return classify_error(exc)
    finally:
        await client.close()


def measurement(p99: float, **fields: Any) -> Measurement:
    """A Measurement around a p99 (the other percentiles in proportion to it), with 2000 clean,
    stable requests at concurrency 4 unless `fields` say otherwise."""
    base: dict[str, Any] = dict(
        load_mode="concurrency",
        load_level=4,
        throughput_rps=100.0,
        p50_ms=p99 / 3,
        p90_ms=p99 / 2,
        p95_ms=p99 / 1.5,
        p99_ms=p99,
        max_ms=p99 * 2,
        mean_ms=p99 / 3,
        p99_ci_low_ms=p99 * 0.9,
        p99_ci_high_ms=p99 * 1.1,
        requests=2000,
        errors=0,
        error_kinds="",
        windows=3,
        stable=True,
        duration_s=1.0,
    )
    return Measurement(**{**base, **fields})


# -- shared studies: workers as real processes, and what their database holds ------------------


def shared_spec(directory: Path, model_repo: Path, confirm_top: int = 0, **space: list[int]) -> Path:
    """The spec the shared-study tests' workers run: the identity model on its own launched
    server, 2 x 2 configs (instance_count [1, 2], max_batch_size [1, 8]; `space` adds or changes
    knobs), short levels up to 4 in flight and a budget every config meets."""
    return write_spec(
        directory,
        model="identity",
        model_repository=str(model_repo),
        budget_ms=50,
        confirm_top=confirm_top,
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2], "max_batch_size": [1, 8], "max_queue_delay_us": [0], **space},
        load={**FAST_LOAD, "max_level": 4, "refine_steps": 1},
    )


def shared_worker(
    spec: Path, study: str, out: Path, *, url: str | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `tritune sweep SPEC --study STUDY --out OUT` as a worker process of a shared study:
    `--storage URL` when a url is given, else the storage comes from `env` (TRITUNE_STORAGE).
    Its stdout and stderr together are its output."""
    storage = ["--storage", url] if url is not None else []
    return started(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "analyzer.cli.main",
                "sweep",
                str(spec),
                *storage,
                "--study",
                study,
                "--out",
                str(out),
            ],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    )


def study_rows(url: str, study: str, kind: str) -> pd.DataFrame:
    """A shared study's rows of one kind (config_id, trial, worker); none yet before a worker
    has made the tables."""
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table("tritune_rows"):
            return pd.DataFrame(columns=["config_id", "trial", "worker"])
        with engine.connect() as conn:
            return pd.read_sql(
                sa.text("select config_id, trial, worker from tritune_rows where study = :s and kind = :k"),
                conn,
                params={"s": study, "k": kind},
            )
    finally:
        engine.dispose()


def study_claims(url: str, study: str) -> list[tuple[str, str]]:
    """A shared study's claims as (config_id, worker); none before a worker has made the table."""
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table("tritune_claims"):
            return []
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("select config_id, worker from tritune_claims where study = :s"), {"s": study}
            ).all()
        return [(str(c), str(w)) for c, w in rows]
    finally:
        engine.dispose()


def unfinished_claims(url: str, study: str, pid: int) -> list[str]:
    """The configs a worker process holds a claim on and has not finished (no config row)."""
    done = set(study_rows(url, study, "config")["config_id"])
    return [
        c
        for c, w in study_claims(url, study)
        if w.endswith(f":{pid}") and c not in done and not c.startswith("__")
    ]


def picked(output: str) -> str:
    """The pick a sweep or a report printed ('best config: ID')."""
    match = re.search(r"^best config: (\S+)", output, re.M)
    assert match, output
    return match.group(1)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    """Wait until `predicate()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(every)
