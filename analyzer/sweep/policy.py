"""Restart and resume policy: what the sweep decides when a config fails, when the server goes
away, and what a resumed run takes over from the run it continues.

- A config that could not be loaded, or got not one successful response at some level, is
  recorded as failed and the sweep goes on; a local server is restarted first when the failure
  may have left a model instance stuck (`failure_of`, `RESTART_KINDS`).
- A server that died or stopped answering costs the config being measured: a local one is
  restarted, a remote one ends the sweep with a run that `--resume` continues (`try_config`).
- A resumed run adopts every config in configs.csv as finished, and measures again any config
  that was in flight when the previous run stopped (`adopt_finished`); its confirmation round
  measures only the (config, round) pairs not yet measured (analyzer.sweep.confirm).
- The level search of each config starts near where the best config so far found its capacity
  (`start_level`).

The server is reached only through the functions passed in, so a unit test drives all of it with
a made-up measuring function (analyzer.judge.levelsearch.MeasureFn) and no server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analyzer.config.pipeline import candidate_from_row
from analyzer.errors import LoadTimeoutError, ServerDiedError
from analyzer.judge.choose import outcome_latency, with_budget_latency
from analyzer.judge.levelsearch import CapacityResult
from analyzer.search.study import Outcome

# Error kinds after which a model instance may still be stuck: a local server is restarted.
RESTART_KINDS = ("timeout", "unfinished", "unavailable", "client_backlog")


def failure_of(result: CapacityResult) -> tuple[str, bool] | None:
    """Why a measured config counts as failed, and whether the server needs a restart.

    A config fails when any of its load levels got not one successful response: the model
    crashed, raised on every request, or the server stopped answering. Timeouts and unanswered
    requests mean a model instance may still be stuck, so a local server is restarted.
    """
    for m, _ in result.measurements:
        if m.stalled:
            return (
                f"the server stopped answering at {m.load_mode} {m.load_level:g}: no request ended "
                f"in {m.windows} windows (requests time out after the request timeout)"
            ), True
        if m.requests > 0 and m.errors >= m.requests:
            restart = any(k in m.error_kinds for k in RESTART_KINDS)
            return (
                f"no request succeeded at {m.load_mode} {m.load_level:g} ({m.requests} requests: "
                f"{m.error_kinds})"
            ), restart
    return None


def log_tail(log: str) -> str:
    """' | server log: ...' with the last few log lines on one line ('' without a log)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return (" | server log: " + " / ".join(lines[-4:])) if lines else ""


@dataclass(frozen=True)
class ConfigOutcome:
    """How one config's turn ended, and what the sweep does next."""

    status: str  # ok | pruned | failed | interrupted (stopped mid-measurement: measured again on resume)
    result: CapacityResult | None = None  # None when it failed
    error: str = ""
    restart: bool = False  # a local server is restarted before the next config
    server_lost: str = ""  # the server died or stopped answering: a remote one ends the sweep

    def ends_sweep(self, local: bool) -> bool:
        """True when the sweep stops here: the server is gone and it is not ours to restart."""
        return bool(self.server_lost) and not local


async def try_config(
    apply: Callable[[], str],
    measure: Callable[[], Awaitable[CapacityResult]],
    server_log: Callable[[int], str],
) -> ConfigOutcome:
    """Load a config (`apply`: '' or the server's reason it could not) and search its capacity
    (`measure`), and judge how that went. `server_log(n)` is the last n lines of the server's log
    ('' for a remote server), quoted in the reason of a failure."""
    try:
        reason = apply()
        if reason:
            return ConfigOutcome("failed", error=reason)
        result = await measure()
        if result.interrupted:
            return ConfigOutcome("interrupted", result)
        failure = failure_of(result)
        if failure:
            return ConfigOutcome("failed", error=failure[0] + log_tail(server_log(6)), restart=failure[1])
        return ConfigOutcome("pruned" if result.pruned else "ok", result)
    except (ServerDiedError, LoadTimeoutError) as exc:
        return ConfigOutcome(
            "failed", error=exc.message + log_tail(exc.log_tail), restart=True, server_lost=exc.message
        )


def adopt_finished(
    configs: pd.DataFrame, measurements: pd.DataFrame, percentile: float, search: Any
) -> set[str]:
    """A resumed run: tell the search every config in configs.csv (they are finished, failed
    ones included), with the budget percentile's latency from the measurements, and return their
    ids. Rows of any other config belong to one that was in
    flight when the previous run stopped; the caller drops them, and it is measured again."""
    finished: set[str] = set()
    for _, row in with_budget_latency(configs, measurements, percentile).iterrows():
        cand = candidate_from_row(row)
        finished.add(str(row["config_id"]))
        capacity = float(row.get("capacity_rps") or 0.0)
        search.adopt(
            cand,
            Outcome(
                capacity,
                outcome_latency(row),
                failed=row["status"] == "failed",
                error=str(row.get("error") or ""),
            ),
        )
    return finished


def start_level(best_level: float | None, min_level: float) -> float:
    """Where a config's level search starts: near where the best config so far found its
    capacity (most configs top out in the same region, and the low levels below it cannot decide
    anything), else at the lowest level."""
    if best_level is None:
        return min_level
    return max(min_level, best_level / 2)
