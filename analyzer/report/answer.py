"""The answer at a budget: which levels meet it, each config's capacity under it, the chosen
config and why, in words for people; and the planner's arithmetic.

Every level is judged by `capacity.row_verdict` at the run's percentile and confidence, and the
latency given is that percentile's. At the sweep's own budget the answer is `choose.choice`'s
(the confirmation round's pick where there was one), so the report, the dashboard and
summary.json agree; at another budget it is the best search capacity under that budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from analyzer.judge.choose import best_config, choice
from analyzer.judge.confirm_stats import search_rows
from analyzer.judge.verdict import row_verdict
from analyzer.report.run import RunData, finite, latency_label, num
from analyzer.schema import csv_true, percentile_field

# -- the answer ---------------------------------------------------------------------------------------


def level_meets(
    measurements: pd.DataFrame, budget_ms: float, percentile: float = 99.0, confidence: float = 0.99
) -> pd.Series:
    """Which measurements meet a (possibly new) budget: `capacity.row_verdict` on every row, the
    rule the sweep judged its levels by, at the run's percentile and confidence. At the sweep's
    budget this agrees with the stored verdicts; at another budget the rows' stored claim bounds
    decide (rows older than those columns: row_verdict's fallback)."""
    if measurements.empty:
        return pd.Series(dtype=bool)
    meets = [
        row_verdict(row, budget_ms, percentile, confidence).meets for row in measurements.to_dict("records")
    ]
    return pd.Series(meets, index=measurements.index, dtype=bool)


def capacity_under_budget(
    measurements: pd.DataFrame, budget_ms: float, percentile: float = 99.0, confidence: float = 0.99
) -> pd.DataFrame:
    """Per config: the highest throughput of a search level meeting `budget_ms` (0 when none
    does), with that level, its budget-percentile latency (`latency_ms`) and its p99 (the sweep's
    tie-breaker). Lets the budget be moved after the sweep."""
    cols = ["config_id", "capacity_rps", "capacity_level", "latency_ms", "p99_ms"]
    m = search_rows(measurements)
    if m.empty:
        return pd.DataFrame(columns=cols)
    meets = level_meets(m, budget_ms, percentile, confidence)
    col = percentile_field(percentile)
    rows = []
    for config_id, group in m.groupby("config_id", sort=False):
        ok = group[meets.loc[group.index]]
        if ok.empty:
            rows.append((config_id, 0.0, math.nan, math.nan, math.nan))
            continue
        top = ok.loc[pd.to_numeric(ok["throughput_rps"], errors="coerce").idxmax()]
        rows.append(
            (
                config_id,
                float(top["throughput_rps"]),
                float(top["load_level"]),
                num(top.get(col)),
                num(top.get("p99_ms")),
            )
        )
    return pd.DataFrame(rows, columns=cols)


def choose_at_budget(
    measurements: pd.DataFrame,
    configs: pd.DataFrame,
    budget_ms: float,
    percentile: float = 99.0,
    confidence: float = 0.99,
) -> pd.Series | None:
    """The best config if the budget were `budget_ms`: the sweep's search-only rule
    (`choose.best_config`) over the search capacities under that budget. A capacity stays a
    lower bound only where it is still at the level that met the sweep's budget at the load cap
    (a tighter budget finds a lower level, which is a measured capacity)."""
    caps = capacity_under_budget(measurements, budget_ms, percentile, confidence)
    if caps.empty:
        return None
    knobs = (
        configs.drop_duplicates("config_id", keep="last")
        .drop(columns=["capacity_rps", "p99_ms"], errors="ignore")
        .rename(columns={"capacity_level": "_sweep_level"})
    )
    merged = caps.merge(knobs, on="config_id", how="left")
    merged["status"] = merged["status"].fillna("ok").replace({"failed": "ok"})
    at_cap = merged["capacity_lower_bound"].apply(csv_true) if "capacity_lower_bound" in merged else False
    sweep_level = (
        pd.to_numeric(merged["_sweep_level"], errors="coerce") if "_sweep_level" in merged else math.nan
    )
    merged["capacity_lower_bound"] = at_cap & (merged["capacity_level"] == sweep_level)
    return best_config(merged.drop(columns="_sweep_level", errors="ignore"))


@dataclass
class Answer:
    """The chosen config at one budget, and why.

    At the sweep's own budget it is the sweep's choice (`choose.choice`: the confirmation round's
    pick where there was one), so the report, the dashboard and summary.json agree; at another
    budget it is the best search capacity under that budget (`choose_at_budget`).
    """

    budget_ms: float
    at_sweep_budget: bool
    best: pd.Series | None  # a configs row plus latency_ms (+ confirmed_rps, capacity_ci_rps, confirm_rounds)
    tie_set: list[str]  # the confirmation round's tie set: it is always the one at the sweep's budget
    reason: str

    @property
    def confirmed(self) -> bool:
        """True when the chosen capacity is the confirmation round's mean."""
        return self.best is not None and finite(self.best.get("confirmed_rps"))


def is_sweep_budget(run: RunData, budget_ms: float) -> bool:
    """True when `budget_ms` is the sweep's own budget (a slider value equal up to rounding)."""
    return math.isclose(float(budget_ms), run.budget_ms, rel_tol=1e-9, abs_tol=1e-6)


def answer_at(
    run: RunData,
    budget_ms: float | None = None,
    measurements: pd.DataFrame | None = None,
    configs: pd.DataFrame | None = None,
) -> Answer:
    """The answer at `budget_ms` (default: the sweep's) over the run's tables, or over the given
    (filtered) ones."""
    m = run.measurements if measurements is None else measurements
    c = run.configs if configs is None else configs
    budget = run.budget_ms if budget_ms is None else float(budget_ms)
    best, tie_set, reason = choice(c, m, run.percentile)
    if is_sweep_budget(run, budget):
        return Answer(budget, True, best, tie_set, reason)
    pick = choose_at_budget(m, c, budget, run.percentile, run.confidence)
    reason = (
        ""
        if pick is None
        else (
            f"{pick['config_id']} has the highest capacity among the search's levels whose "
            f"{latency_label(run.percentile)} meets {budget:g} ms (the confirmation round ran at the sweep's "
            "budget only)"
        )
    )
    return Answer(budget, False, pick, tie_set, reason)


def replicas_needed(target_rps: float, capacity_rps: float) -> int:
    """Servers (each running the chosen config) needed to serve target_rps within the budget."""
    if capacity_rps <= 0:
        raise ValueError("the config has no capacity under the budget")
    if target_rps <= 0:
        return 0
    return math.ceil(target_rps / capacity_rps - 1e-9)


def cost_per_million(target_rps: float, replicas: int, price_per_server_hour: float) -> float:
    """Cost of a million inferences when `replicas` servers at `price_per_server_hour` serve
    `target_rps` around the clock."""
    if target_rps <= 0:
        return math.nan
    return replicas * price_per_server_hour / (target_rps * 3600.0) * 1e6


# -- in words -----------------------------------------------------------------------------------------


def fmt_rps(value: float) -> str:
    """A throughput for people: thousands separated, decimals only where they matter."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def capacity_text(row: pd.Series) -> str:
    """A config's capacity: "3,120 req/s (95 % CI 2,980..3,260, 3 rounds)" when confirmed, with
    "≥ " when it met the budget at the load cap (so it is only a lower bound)."""
    sign = "≥ " if csv_true(row.get("capacity_lower_bound")) else ""
    confirmed = num(row.get("confirmed_rps"))
    if not math.isfinite(confirmed):
        return f"{sign}{fmt_rps(num(row.get('capacity_rps')))} req/s"
    rounds = int(num(row.get("confirm_rounds"))) if finite(row.get("confirm_rounds")) else 0
    ci = row.get("capacity_ci_rps")
    pair = isinstance(ci, (list, tuple)) and len(ci) == 2
    low, high = (num(ci[0]), num(ci[1])) if pair else (math.nan, math.nan)
    plural = "s" if rounds != 1 else ""
    if math.isfinite(low) and math.isfinite(high):
        return (
            f"{sign}{fmt_rps(confirmed)} req/s (95 % CI {fmt_rps(low)}..{fmt_rps(high)}, "
            f"{rounds} round{plural})"
        )
    return f"{sign}{fmt_rps(confirmed)} req/s ({rounds} round{plural}: too few for an interval)"


def tie_set_sentence(tie_set: list[str], chosen: str | None) -> str:
    """What the tie set means, for the answer (plain text; the ids are listed separately)."""
    if not tie_set:
        return (
            "No confirmation round (yet): the pick rests on one search measurement per level, so there "
            "is no tie set."
        )
    if len(tie_set) == 1:
        return "No other confirmed config is within noise of its capacity."
    return (
        f"These {len(tie_set)} configs are within noise of each other (their 95 % intervals overlap the "
        f"best one's), so the pick is the cheapest of them: {chosen} (fewest instances, then smallest "
        "max batch, then smallest queue delay)."
    )


def confirmed_text(stats: pd.DataFrame, config_id: str) -> str:
    """A config's confirmation round in brief ("3,120 (2,980..3,260), 3/3 met"); "" when it was
    not re-measured. `stats`: confirm_stats.confirmation_stats indexed by config_id."""
    if config_id not in stats.index:
        return ""
    s = stats.loc[config_id]
    interval = (
        f" ({fmt_rps(s['ci_low_rps'])}..{fmt_rps(s['ci_high_rps'])})"
        if math.isfinite(s["ci_low_rps"]) and math.isfinite(s["ci_high_rps"])
        else ""
    )
    return f"{fmt_rps(s['capacity_rps'])}{interval}, {int(s['met_rounds'])}/{int(s['rounds'])} met"
