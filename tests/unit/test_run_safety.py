"""The run directory's safety without a server: whole-or-nothing rewrites (under a real file size
limit), a table's half-written last row cut back on resume, the writer's lock, and Ctrl-C,
SIGTERM and SIGHUP (real signals to this process) stopping a measurement, held off while the
server's configs are put back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from analyzer.cli.common import signals_stop
from analyzer.errors import UsageError
from analyzer.measure.levels import StopToken
from analyzer.store.csv_tables import complete_prefix
from analyzer.store.rundir import RunStore
from tests.helpers import ROOT, expect_error, write_spec


def test_a_rewrite_that_the_disk_refuses_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text('{"old": true}\n')
    # A real refusal: a child process whose files may not grow past 1000 bytes (EFBIG).
    child = textwrap.dedent(
        f"""
        import resource, sys
        from analyzer.errors import WriteError
        from analyzer.files import write_atomic
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        try:
            write_atomic({str(target)!r}, "x" * 5000)
        except WriteError as exc:
            print(exc.message)
            sys.exit(7)
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 7, done.stderr
    assert f"cannot write {target}: File too large" in done.stdout
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left


HEADER = b"config_id,error,throughput_rps\r\n"
ROW = b"i1_b8_d0,,100.5\r\n"
QUOTED = b'i2_b8_d0,"line one\r\nline ""two""",80.0\r\n'


@pytest.mark.parametrize(
    "data, whole",
    [
        (HEADER + ROW, HEADER + ROW),
        (HEADER + ROW + b"i2_b8_d0,,9", HEADER + ROW),  # cut inside the last row
        (HEADER + ROW + QUOTED, HEADER + ROW + QUOTED),  # a newline inside a quoted field
        (HEADER + ROW + QUOTED[:20], HEADER + ROW),  # cut just after that inner newline
        (HEADER[:10], b""),  # even the header cut short
        (b"", b""),
    ],
)
def test_complete_prefix_ends_at_the_last_whole_row(data: bytes, whole: bytes) -> None:
    assert complete_prefix(data) == whole


def test_a_resumed_run_cuts_a_half_written_row_back_and_says_so(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append_config({"config_id": "i1_b8_d0", "status": "ok", "capacity_rps": 100.0})
    whole = store.path("configs").read_bytes()
    with open(store.path("configs"), "ab") as fh:
        fh.write(b"i2_b8_d0,2,8,0,,KIND_CP")  # what a write cut short by a full disk leaves
    notes = RunStore(tmp_path).repair_tables()
    assert notes == [
        "configs.csv: its last row was cut short when the previous run stopped (23 bytes); "
        "removed it (its config is measured again)"
    ]
    assert store.path("configs").read_bytes() == whole
    # The next row starts on a line of its own, not glued to the cut one.
    again = RunStore(tmp_path)
    again.append_config({"config_id": "i2_b8_d0", "status": "ok", "capacity_rps": 90.0})
    assert list(pd.read_csv(again.path("configs"))["config_id"]) == ["i1_b8_d0", "i2_b8_d0"]
    assert RunStore(tmp_path).repair_tables() == []


def test_a_run_directory_has_one_writer_at_a_time(tmp_path: Path) -> None:
    holder = RunStore(tmp_path)
    holder.lock()
    with pytest.raises(UsageError) as info:
        RunStore(tmp_path).lock()
    assert f"in use by another tritune (pid {os.getpid()})" in info.value.message
    holder.release()
    RunStore(tmp_path).lock()  # free again


def test_resume_of_a_run_in_use_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, model="identity", model_repository=str(tmp_path))
    run = RunStore.create(tmp_path / "out", "identity")
    (run.dir / "spec.yaml").write_bytes(spec.read_bytes())
    run.lock()
    try:
        before = sorted(p.name for p in run.dir.iterdir())
        stderr = expect_error(2, "sweep", "--resume", run.dir)
        assert f"run directory {run.dir} is in use by another tritune (pid {os.getpid()})" in stderr
        assert sorted(p.name for p in run.dir.iterdir()) == before
    finally:
        run.release()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_asks_for_a_stop_then_aborts_except_while_shielded(sig: signal.Signals) -> None:
    stop, said = StopToken(), []
    before = signal.getsignal(sig)
    with signals_stop(stop, said.append):
        os.kill(os.getpid(), sig)  # Python runs the handler before the next line
        assert stop.requested and stop.exit_code == 128 + sig
        with stop.shielded():
            os.kill(os.getpid(), sig)  # held off: no KeyboardInterrupt while putting configs back
        assert (
            said[-1]
            == f"\n{sig.name}: putting the server's original configs back first; tritune exits when done"
        )
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
    assert signal.getsignal(sig) is before  # the caller's handler is back
