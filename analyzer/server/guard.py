"""Kill a local server's whole process group once tritune is gone, however it went.

PR_SET_PDEATHSIG takes tritonserver down with tritune, but not its python-backend stubs: they
are reparented away from the server, and a stub that was in the middle of a request when the
server died deadlocks instead of exiting (seen with Triton 2.51 after `kill -9` of a sweep: all
three stub threads waiting on futexes, for good). Nothing of tritune runs after `kill -9`, so a
separate tiny process does the cleanup: it holds the read end of a pipe whose write end only
tritune holds. When tritune exits or dies the pipe reads EOF and the guard SIGKILLs the server's
process group, stubs included (they share the server's group). Run as
`python -m analyzer.server.guard PGID`; tritune kills the guard itself when it stops the server
normally, so the guard never signals a group id that may have been reused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def spawn_guard(pgid: int) -> subprocess.Popen[bytes]:
    """Start a guard for process group `pgid`; keep the returned Popen (its stdin is the pipe
    whose closing, by our exit or death, fires the guard)."""
    return subprocess.Popen(
        [sys.executable, "-m", "analyzer.server.guard", str(pgid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own session: a terminal's Ctrl-C must reach tritune (which stops the server in
        # order), not kill the guard that covers a later kill -9.
        start_new_session=True,
    )


def stop_guard(guard: subprocess.Popen[bytes] | None) -> None:
    """Stop a guard without letting it fire (the server has been stopped already)."""
    if guard is None:
        return
    guard.kill()
    try:
        guard.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    if guard.stdin is not None:
        guard.stdin.close()


def main(argv: list[str]) -> int:
    """Wait for EOF on stdin, then SIGKILL process group argv[0]."""
    if len(argv) != 1 or not argv[0].isdigit() or int(argv[0]) <= 1:
        print("usage: python -m analyzer.server.guard PGID", file=sys.stderr)
        return 2
    pgid = int(argv[0])
    while sys.stdin.buffer.read(4096):
        pass  # tritune never writes; anything it did write is not a reason to fire
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
