"""The server guard: it kills a process group once its owner dies (even by SIGKILL), and never
fires when the owner stops it. Plain processes stand in for tritonserver and its stubs: `sleep`
has no way of noticing that its parent died, so only the guard can end it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from analyzer.server.guard import main, spawn_guard, stop_guard
from tests.helpers import ROOT

OWNER = """
import subprocess, sys, time
from analyzer.server.guard import spawn_guard
group = subprocess.Popen(["sleep", "600"], start_new_session=True)
guard = spawn_guard(group.pid)
print(group.pid, guard.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def test_guard_kills_the_group_when_its_owner_is_killed() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert owner.stdout is not None
    group_pid, guard_pid = map(int, owner.stdout.readline().split())
    try:
        assert not gone(group_pid) and not gone(guard_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert wait_gone(group_pid, 10), "the guard did not kill the orphaned group"
        assert wait_gone(guard_pid, 10), "the guard did not exit after firing"
    finally:
        owner.stdout.close()
        for pid in (group_pid, guard_pid):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_stopped_guard_does_not_fire() -> None:
    group = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        guard = spawn_guard(group.pid)
        stop_guard(guard)
        assert guard.returncode == -signal.SIGKILL  # killed by us, not exited after firing
        assert group.poll() is None
    finally:
        group.kill()
        group.wait()


def test_guard_rejects_a_bad_group_id(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["1"]) == 2  # never the whole system's group
    assert main(["x"]) == 2
    assert "usage" in capsys.readouterr().err
