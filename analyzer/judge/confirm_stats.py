"""The confirmation round's rows and numbers: which measurements are the search's and which are
re-measurements (`search_rows`, `confirm_rows`), and per re-measured config its capacity's mean
with a 95 % t-interval (`confirmation_stats`). Pure functions over pandas DataFrames; the choice
itself (analyzer.judge.choose) reads them."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from analyzer.judge.verdict import Status
from analyzer.schema import csv_true

# Two-sided 95 % Student t quantiles by degrees of freedom (no SciPy dependency for one table).
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}
CONFIRM_PHASE = "confirm"
MIN_CONFIRM_ROUNDS = 3  # fewer repeats (a stopped confirmation round) give no usable interval


def t95(dof: int) -> float:
    """Two-sided 95 % quantile of Student's t with `dof` degrees of freedom (conservative
    between tabulated values; 1.96 for large samples)."""
    if dof < 1:
        return math.inf
    for d in sorted(_T95):
        if dof <= d:
            return _T95[d] if dof == d else _T95[max(k for k in _T95 if k <= dof)]
    return 1.96


def mean_ci(samples: list[float] | npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """(mean, low, high): the 95 % t-interval of the mean of independent repeats."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, -math.inf, math.inf
    half = t95(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def pooled_relative_sd(groups: list[list[float]]) -> tuple[float, int]:
    """(relative standard deviation, degrees of freedom) pooled over groups of repeats: each
    sample's deviation from its group's mean, relative to that mean (noise on a shared machine is
    about proportional to throughput). (NaN, 0) when no group has two samples."""
    squares, dof = 0.0, 0
    for samples in groups:
        x = np.asarray([v for v in samples if math.isfinite(v)], dtype=float)
        if len(x) < 2 or x.mean() <= 0:
            continue
        squares += float(((x / x.mean() - 1.0) ** 2).sum())
        dof += len(x) - 1
    return (math.sqrt(squares / dof), dof) if dof else (math.nan, 0)


def _is_confirm(measurements: pd.DataFrame) -> pd.Series:
    # Runs older than the column have only search rows.
    if "phase" not in measurements:
        return pd.Series(False, index=measurements.index)
    return measurements["phase"].astype(str) == CONFIRM_PHASE


def search_rows(measurements: pd.DataFrame) -> pd.DataFrame:
    """The search's measurements: what capacities, Pareto points, load curves, breakdowns and
    resources are drawn from (a confirmation round re-measures levels the search already judged;
    counting its rows again would let the luckiest repeat set a capacity)."""
    if measurements.empty:
        return measurements
    return measurements[~_is_confirm(measurements)]


def confirm_rows(measurements: pd.DataFrame) -> pd.DataFrame:
    """The confirmation round's re-measurements (none in older runs)."""
    if measurements.empty:
        return measurements
    return measurements[_is_confirm(measurements)]


def confirmation_stats(measurements: pd.DataFrame) -> pd.DataFrame:
    """Per config re-measured in the confirmation round: its rounds, the capacity samples (the
    throughput at its capacity level in each round), their mean with a 95 % t-interval (from the
    relative noise pooled over all confirmed configs), and in how many rounds the level did not
    break the budget again (`met_rounds`)."""
    cols = ["config_id", "rounds", "met_rounds", "capacity_rps", "ci_low_rps", "ci_high_rps", "samples"]
    conf = confirm_rows(measurements)
    if conf.empty:
        return pd.DataFrame(columns=cols)
    groups = {
        str(k): pd.to_numeric(g["throughput_rps"], errors="coerce").dropna().tolist()
        for k, g in conf.groupby("config_id", sort=False)
    }
    rel_sd, dof = pooled_relative_sd(list(groups.values()))
    rows = []
    for config_id, g in conf.groupby("config_id", sort=False):
        samples = groups[str(config_id)]
        mean = float(np.mean(samples)) if samples else math.nan
        if samples and dof > 0:
            # One noise for all: the configs were measured in the same rounds on the same machine,
            # so their spreads estimate one relative noise, with more degrees of freedom than any
            # config's three rounds give alone.
            half = t95(dof) * rel_sd * mean / math.sqrt(len(samples))
            low, high = mean - half, mean + half
        else:
            mean, low, high = mean_ci(samples)
        if "verdict" in g:
            # Broken again means errors, or proven over the budget. A capacity level is the
            # highest that met the budget, so a re-measurement lands just over it about as often
            # as just under: an estimate over it, or windows that disagreed, is that noise.
            verdict = g["verdict"].astype(str)
            # Rows written before the column existed (empty) take every break as proven.
            flag = g["verdict_proven"] if "verdict_proven" in g else pd.Series(math.nan, index=g.index)
            proven = flag.apply(lambda v: csv_true(v) or pd.isna(v))
            broke = (verdict == Status.ERRORS.value) | ((verdict == Status.OVER_BUDGET.value) & proven)
            met = int((~broke).sum())
        else:
            met = int(g["meets_budget"].apply(csv_true).sum()) if "meets_budget" in g else 0
        rows.append((str(config_id), len(g), met, mean, low, high, samples))
    return pd.DataFrame(rows, columns=cols)
