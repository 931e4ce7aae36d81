"""A user's running server through every way tritune can stop: kill -9 then --resume, kill -9
then `tritune restore`, SIGTERM and SIGHUP (with a second signal during the restore), and a
full disk mid-sweep then --resume. Each ends with the user's model on its original config, byte
for byte as tritune recorded it before its first change, and with nothing measured lost.

The "user's server" is a real tritonserver that the test starts itself (explicit model control),
holding `mm`: 1 instance, max batch 32, queue delay 1000 us, preferred batch [32]. tritune only
reaches it by --url, as it would a production server."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analyzer.config.modelconfig import from_dict, knobs_of, parse_pbtxt, read_pbtxt, to_pbtxt
from analyzer.server.control import ServerControl
from analyzer.server.discovery import find_tritonserver
from analyzer.server.local import LocalServer
from tests.helpers import FAST_LOAD, TEST_MODELS, cli_process, read_until, run_cli, spec_writer

MM_CONFIG = """name: "mm"
backend: "python"
max_batch_size: 32
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 1000 preferred_batch_size: [ 32 ] }
"""

# Every candidate differs from mm's own config (queue delay 500, not 1000), so a server left on
# one is told apart from the original.
write_spec = spec_writer(
    model="mm",
    inputs={"INPUT0": [16]},
    space={"instance_count": [1, 2], "max_batch_size": [16], "max_queue_delay_us": [500]},
    load={**FAST_LOAD, "request_timeout_s": 5.0},
)


@pytest.fixture(scope="module")
def users_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The user's server: a real tritonserver on a repository holding mm, with mm loaded."""
    repo = tmp_path_factory.mktemp("users_repo")
    (repo / "mm" / "1").mkdir(parents=True)
    shutil.copy(TEST_MODELS / "identity" / "1" / "model.py", repo / "mm" / "1" / "model.py")
    (repo / "mm" / "config.pbtxt").write_text(MM_CONFIG)
    server = LocalServer(find_tritonserver(), repo, repo.parent / "users_server.log")
    server.start()
    try:
        with control_of(server) as control:
            control.load_model("mm")
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def control_of(server: LocalServer) -> Iterator[ServerControl]:
    assert server.endpoint is not None
    with ServerControl(server.endpoint, "grpc") as control:
        yield control


def served(server: LocalServer) -> str:
    """mm's config as the server serves it now, as config.pbtxt text."""
    with control_of(server) as control:
        return canonical(control.model_config("mm"))


@pytest.fixture
def original(users_server: LocalServer) -> str:
    """mm as the user has it: its repository's config (unload and load brings that back, should
    an earlier test have failed with a candidate loaded)."""
    with control_of(users_server) as control:
        control.unload_model("mm")
        control.load_model("mm")
    text = served(users_server)
    assert "max_queue_delay_microseconds: 1000" in text and "count: 1\n" in text
    return text


def canonical(config: dict[str, Any]) -> str:
    """A served config as config.pbtxt text (protobuf's text format: one text per config)."""
    return to_pbtxt(from_dict(config))


def url_of(server: LocalServer) -> str:
    assert server.endpoint is not None
    return server.endpoint.url("grpc")


def start_sweep(*args: str | Path) -> subprocess.Popen[str]:
    """`tritune sweep ARGS` as its own process (it is killed and signalled like a user's)."""
    return cli_process("sweep", *args)


def run_dir(out: Path) -> Path:
    (run,) = list(out.iterdir())
    return run


def recorded(run: Path) -> str:
    """mm's config as the run's originals record holds it, as config.pbtxt text."""
    record = json.loads((run / "originals.json").read_text())["models"]["mm"]
    assert record["loaded"] is True
    return canonical(record["config"])


def assert_whole_tables(run: Path) -> None:
    """Every row of both tables has the header's fields, and no config was measured twice."""
    for name in ("measurements.csv", "configs.csv"):
        rows = list(csv.reader(io.StringIO((run / name).read_text())))
        assert rows and all(len(r) == len(rows[0]) for r in rows), f"{name} has a broken row"
    configs = pd.read_csv(run / "configs.csv")
    assert configs["config_id"].is_unique
    levels = pd.read_csv(run / "measurements.csv")
    assert not levels.duplicated(["config_id", "load_level"]).any()


def test_kill_9_then_resume_ends_on_the_original_config_byte_for_byte(
    tmp_path: Path, users_server: LocalServer, original: str
) -> None:
    spec = write_spec(tmp_path)
    proc = start_sweep(spec, "--url", url_of(users_server), "--out", tmp_path / "out")
    read_until(proc, "concurrency 1:", 120)  # a candidate is loaded and being measured
    proc.kill()
    proc.wait(timeout=30)
    run = run_dir(tmp_path / "out")
    assert served(users_server) != original  # what kill -9 leaves: the server on a candidate
    base = (run / "base_config.pbtxt").read_bytes()
    assert knobs_of(read_pbtxt(run / "base_config.pbtxt")) == knobs_of(parse_pbtxt(original))

    resumed = run_cli("sweep", "--resume", run, "--quiet")

    assert resumed.exit_code == 0, resumed.output
    assert served(users_server) == original
    assert (run / "base_config.pbtxt").read_bytes() == base  # not re-read from the server
    # The record was written before the first change and holds the original, byte for byte;
    # the resumed run said that the server was not as recorded, and went on from the record.
    assert recorded(run) == original
    assert "not its recorded original (instances 1, max_batch_size 32, queue delay 1000 us)" in resumed.stderr
    assert_whole_tables(run)
    assert sorted(pd.read_csv(run / "configs.csv")["config_id"]) == ["i1_b16_d500", "i2_b16_d500"]


def test_kill_9_then_tritune_restore_and_no_second_writer_meanwhile(
    tmp_path: Path, users_server: LocalServer, original: str
) -> None:
    spec = write_spec(tmp_path)
    proc = start_sweep(spec, "--url", url_of(users_server), "--out", tmp_path / "out")
    try:
        read_until(proc, "concurrency 1:", 120)
        run = run_dir(tmp_path / "out")
        # While the sweep runs, neither a resume nor a restore may write its run directory.
        for args in (("sweep", "--resume", run), ("restore", run)):
            busy = run_cli(*args)
            assert busy.exit_code == 2, busy.output
            assert f"in use by another tritune (pid {proc.pid})" in busy.stderr
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert served(users_server) != original

    restored = run_cli("restore", run)

    assert restored.exit_code == 0, restored.output
    assert "mm (its config loaded again)" in restored.stdout
    assert served(users_server) == original == recorded(run)
    again = run_cli("restore", run)
    assert again.exit_code == 0 and "serves its original configs already" in again.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_sweep_keeps_its_results_and_restores_within_10_s(
    tmp_path: Path, users_server: LocalServer, original: str, sig: signal.Signals
) -> None:
    spec = write_spec(tmp_path)
    proc = start_sweep(spec, "--url", url_of(users_server), "--out", tmp_path / "out")
    try:
        before = read_until(proc, "concurrency 1:", 120)
        sent = time.monotonic()
        proc.send_signal(sig)
        read_until(proc, "putting back the original config of mm", 10)
        proc.send_signal(sig)  # a second signal during the restore must not cut it short
        assert proc.stderr is not None
        rest = proc.stderr.read()
        proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, rest
    # The first change to the server was announced, naming the way back.
    assert f"tritune reconfigures live models on the server at {url_of(users_server)}" in before[0]
    assert "tritune restore" in before[0]
    assert took <= 10, f"took {took:.1f} s from the signal to the end"
    assert f"{sig.name}: putting the server's original configs back first" in rest
    assert "has its original configs back: mm" in rest
    assert "Traceback" not in rest
    assert served(users_server) == original
    run = run_dir(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is False and summary["stopped_reason"] == "stopped by the user"
    assert len(pd.read_csv(run / "measurements.csv")) >= 1  # what was measured is kept


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk that the test can fill (and that holds a report once emptied)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (mount says: {done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to its last byte; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0")
    return filler


def test_a_full_disk_mid_sweep_stops_cleanly_and_resume_finishes(
    tmp_path: Path, small_disk: Path, users_server: LocalServer, original: str
) -> None:
    spec = write_spec(tmp_path)
    out = small_disk / "out"
    proc = start_sweep(spec, "--url", url_of(users_server), "--out", out)
    lines = read_until(proc, "-> capacity", 120)  # the first config is finished and written
    filler = fill(small_disk)
    assert proc.stderr is not None
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    output = "".join(lines) + rest
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    assert "No space left on device" in output or "database or disk is full" in output, output
    assert "tritune sweep --resume" in output
    assert served(users_server) == original  # restored on this way out too
    run = run_dir(out)
    first = pd.read_csv(run / "configs.csv")
    assert len(first) >= 1

    os.unlink(filler)
    resumed = run_cli("sweep", "--resume", run, "--quiet")

    assert resumed.exit_code == 0, resumed.output
    assert_whole_tables(run)
    configs = pd.read_csv(run / "configs.csv")
    assert sorted(configs["config_id"]) == ["i1_b16_d500", "i2_b16_d500"]
    assert served(users_server) == original
