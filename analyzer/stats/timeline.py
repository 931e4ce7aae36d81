"""Time-resolved results of a scheduled run: per second, what was due, sent, served and failed,
and the latency percentiles of the requests scheduled in that second.

Pure: records in, a pandas table out. Latency counts from each request's scheduled time, so a
request the client or a cap held back is as late as its user would see it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analyzer.load.generator import Records

TIMELINE_COLUMNS = ["second", "due", "sent", "completed", "errors", "throughput_rps", "p50_ms", "p99_ms"]


def timeline(records: Records, start: float, duration_s: float, bin_s: float = 1.0) -> pd.DataFrame:
    """One row per `bin_s` of the run: requests due (scheduled), sent and completed (successes
    finishing in it), errors (of requests due in it), throughput, and p50/p99 of the requests due
    in it that succeeded."""
    bins = max(1, math.ceil(duration_s / bin_s - 1e-9))
    edges = start + bin_s * np.arange(bins + 1)
    due_bin = np.digitize(records.scheduled, edges) - 1
    sent_bin = np.digitize(records.sent, edges) - 1
    done_bin = np.digitize(records.done, edges) - 1
    ok = records.ok
    latency = records.latency_s * 1e3
    rows = []
    for b in range(bins):
        mine = due_bin == b
        lat = np.sort(latency[mine & ok])
        completed = int(np.sum(ok & (done_bin == b)))
        rows.append(
            {
                "second": round(b * bin_s, 6),
                "due": int(np.sum(mine)),
                "sent": int(np.sum(sent_bin == b)),
                "completed": completed,
                "errors": int(np.sum(mine & ~ok)),
                "throughput_rps": completed / bin_s,
                "p50_ms": float(np.percentile(lat, 50)) if len(lat) else math.nan,
                "p99_ms": float(np.percentile(lat, 99)) if len(lat) else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=TIMELINE_COLUMNS)


def worst_window_percentile(
    records: Records, start: float, duration_s: float, q: float = 99.0, window_s: float = 60.0
) -> float:
    """The highest `q`th percentile latency over any `window_s` of requests due in the run
    (windows start every tenth of a window; the whole run when it is shorter). NaN when nothing
    succeeded."""
    ok = records.ok
    scheduled, latency = records.scheduled[ok], records.latency_s[ok] * 1e3
    if len(latency) == 0:
        return math.nan
    window_s = min(window_s, duration_s)
    worst = -math.inf
    for lo in np.arange(start, start + duration_s - window_s + 1e-9, max(window_s / 10, 1e-3)):
        mine = latency[(scheduled >= lo) & (scheduled < lo + window_s)]
        if len(mine):
            worst = max(worst, float(np.percentile(mine, q)))
    return worst if math.isfinite(worst) else math.nan
