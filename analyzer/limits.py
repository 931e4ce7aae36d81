"""tritune's limits, in one place: how many sockets the load generator may open, and how large a
search space, a load schedule or a request set may be.

Each size is checked before it is built (its size is computed from its parts, never by making
it), and a spec or a command that asks for more is refused up front, before a server starts,
with the size and the limit in the message (exit 2). The numbers are here so that the spec
checks, the preflight, the planners and the load generator all read the same ones.

The open-file limit is raised once at start (`raise_fd_limit`, by the CLI and by every load
worker process): the soft limit goes up to the hard one, which needs no privilege. What is left
after a reserve for everything else tritune opens is the connection budget of the load
generator (`connection_budget`); over HTTP/1.1, which carries one request per connection at a
time, it also caps the requests in flight (analyzer.load.selfcheck says so when a level asked
for more).
"""

from __future__ import annotations

import math
from pathlib import Path

try:
    import resource
except ImportError:  # not a Unix: no rlimits to read or raise
    resource = None  # type: ignore[assignment]  # the module or None; every use checks which

# -- search spaces ---------------------------------------------------------------------------------
# Candidates of one model's space (the product of its knob values), and of the joint space of a
# pipeline or of several models (the product of theirs). Every candidate is a Python object and
# an entry of the search's bookkeeping; 100,000 is far past what a sweep measures (tens) and
# still a few hundred MB at most.
MAX_SPACE_POINTS = 100_000

# -- load schedules --------------------------------------------------------------------------------
MAX_SCHEDULE_S = 86_400.0  # a day: a longer schedule is a soak test, not a sweep level
# The rate is integrated on a grid of 1 ms steps, coarser for long schedules so that the grid
# never holds more than this many points (a day: 86 ms steps). Each point is a few float64
# arrays in every worker process.
MAX_SCHEDULE_GRID = 1_000_000
# Send times of one played schedule (or one steady open-loop level), all worker processes
# together: each is a float64 in the worker that sends it and a record (four numbers) after.
MAX_SCHEDULE_REQUESTS = 20_000_000

# -- request data ----------------------------------------------------------------------------------
MAX_REQUESTS = 100_000  # distinct prebuilt requests (generated, or read from a data file)
# Tensor bytes of the whole request set: it is built once, serialized once per protocol and
# copied into every load worker process, so it costs several times this in memory.
MAX_REQUEST_SET_BYTES = 256 * 2**20
MAX_DATA_FILE_BYTES = 256 * 2**20  # a perf_analyzer JSON file is parsed whole into Python objects

# -- names -----------------------------------------------------------------------------------------
# A model name is a directory of a model repository, and names tritune's run directory too: one
# path component, at most a file name's length (NAME_MAX on Linux; less the run directory's
# "-YYYYmmdd-HHMMSS-NNN" suffix).
MAX_NAME_BYTES = 200

# -- sockets ---------------------------------------------------------------------------------------
# Descriptors kept back from the load generator's connections: the server's control and
# statistics clients, the log, the run directory's files and database, pipes to the workers,
# Python's own. An eighth of the limit, and at least this many.
FD_RESERVE = 64
# Connections of one load generator (all its processes): past this many the loopback's or the
# machine's ephemeral ports (28,232 by default on Linux) run out before the descriptors do.
MAX_CONNECTIONS = 16_384


def fd_limit() -> int:
    """The soft limit on open files of this process (a large number where there is none)."""
    if resource is None:
        return MAX_CONNECTIONS + FD_RESERVE
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 2**31 - 1 if soft == resource.RLIM_INFINITY else int(soft)


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard limit (no privilege needed) and return the
    soft limit now. A shell's default soft limit (often 1024) is far below the hard one, and a
    level of 1024 requests in flight over HTTP needs 1024 sockets. Where the hard limit is
    unlimited, the kernel's own ceiling (fs.nr_open) is used."""
    if resource is None:
        return fd_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # not allowed here (a container's seccomp, say): the budget uses what there is
    return fd_limit()


def _nr_open() -> int:
    """The kernel's ceiling on a process's open files (Linux), or a safe 65,536 elsewhere."""
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 65_536


def fd_reserve(limit: int) -> int:
    """Descriptors kept back from the connection budget at an open-file limit of `limit`."""
    return max(FD_RESERVE, limit // 8)


def connection_budget(processes: int = 1, limit: int | None = None) -> int:
    """Connections each of `processes` load processes may open: the open-file limit (`limit`,
    default this process's soft limit) less the reserve, capped at MAX_CONNECTIONS, split
    evenly. The split keeps the total within one process's limit too: a server started by
    tritune inherits the same limit and holds one descriptor per client connection."""
    limit = fd_limit() if limit is None else limit
    total = min(MAX_CONNECTIONS, limit - fd_reserve(limit))
    return max(1, math.floor(total / max(1, processes)))
