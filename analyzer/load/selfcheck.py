"""Was the load generator the bottleneck? The self-check every level gets (pure).

A level is `client_bound` when the generator could not offer the load it was asked for, so its
numbers describe the client, not the model:
- open loop: requests went out late against their schedule. The median send lag exceeds both
  `MIN_LAG_MS` and two gaps between one worker's consecutive sends: the worker is behind its
  schedule most of the time, not just now and then. (On 2 shared cores a worker that keeps up
  still lags 0.3-1.1 ms at times, as the server takes the CPU; one that cannot keep up lags
  tens to hundreds of milliseconds.)
- closed loop: the busiest worker's event loop used at least `LOOP_SATURATED` of a core. A
  closed loop sends the next request as soon as one returns, so a saturated loop means requests
  waited on the client before going out (and their replies before being read).
- either loop: the connections capped the requests in flight. HTTP/1.1 carries one request per
  connection at a time, and the connections are capped by the open-file limit
  (analyzer.limits.connection_budget). A closed loop asked for more kept as many in flight as it
  had connections, so its figures are those of that many, not of the level; an open loop's
  requests waited for a free connection, so they went out late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LOOP_SATURATED = 0.90  # fraction of one core
MIN_LAG_MS = 2.0
LAG_GAPS = 2.0

FIX = "give more --workers (load.workers in a spec), or run tritune on a separate load machine"
FIX_CONNECTIONS = (
    "raise the open-file hard limit (ulimit -Hn; tritune raises the soft limit to it), or use "
    "--protocol grpc (HTTP/2 carries many requests on one connection)"
)


@dataclass(frozen=True)
class ClientLoad:
    """What the generator did over a measured span."""

    workers: int
    cpu_s: float  # CPU seconds of all load processes
    busiest_loop_s: float  # CPU seconds of the busiest worker's event-loop thread
    span_s: float
    send_lag_p50_ms: float = math.nan  # open loop only
    inflight_limit: int | None = None  # the connections, when they capped the requests in flight

    @property
    def cpu_pct(self) -> float:
        """The generator's CPU use, in % of one core (all workers together)."""
        return 100.0 * self.cpu_s / self.span_s if self.span_s > 0 else math.nan

    @property
    def busiest_loop_pct(self) -> float:
        """The busiest worker's event loop, in % of one core."""
        return 100.0 * self.busiest_loop_s / self.span_s if self.span_s > 0 else math.nan


def client_bound_reason(load_mode: str, level: float, client: ClientLoad) -> str:
    """Why the generator could not hold the load asked for ('' when it could)."""
    if load_mode != "concurrency" and client.inflight_limit is not None:
        return (
            f"requests waited for one of the {client.inflight_limit} connections the open-file limit "
            "(ulimit -n) leaves room for (HTTP/1.1 carries one request per connection), so they went "
            f"out late: {FIX_CONNECTIONS}"
        )
    if load_mode == "rate":
        gap_ms = 1000.0 * client.workers / level if level > 0 else math.inf
        lag = client.send_lag_p50_ms
        if math.isfinite(lag) and lag > max(MIN_LAG_MS, LAG_GAPS * gap_ms):
            return (
                f"requests went out {lag:.1f} ms late (median) against one every {gap_ms:.2f} ms per worker "
                f"({client.workers} worker{'s' if client.workers != 1 else ''}): {FIX}"
            )
        return ""
    if client.inflight_limit is not None and client.inflight_limit < level:
        return (
            f"concurrency {level:g} needs {level:g} connections over HTTP/1.1 (one request per "
            f"connection), but the open-file limit (ulimit -n) leaves room for {client.inflight_limit} "
            f"connections, so at most "
            f"{client.inflight_limit} were in flight: {FIX_CONNECTIONS}"
        )
    busy = client.busiest_loop_pct
    if math.isfinite(busy) and busy >= 100.0 * LOOP_SATURATED:
        return (
            f"the load generator's event loop was saturated ({busy:.0f} % of a core, "
            f"{client.workers} worker{'s' if client.workers != 1 else ''}): {FIX}"
        )
    return ""
