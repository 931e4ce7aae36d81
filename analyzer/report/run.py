"""A run directory as the report and the dashboard read it: `load_run` -> `RunData`, and the
columns and labels of the run's budget percentile.

Works on a run directory that is still being written: whatever rows exist are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyzer.schema import percentile_field
from analyzer.spec.spec import SweepSpec, load_spec
from analyzer.store.rundir import CONFIG_COLUMNS, MEASUREMENT_COLUMNS, RunStore


@dataclass
class RunData:
    """What a report needs from a run directory."""

    dir: Path
    model: str
    budget_ms: float
    percentile: float
    confidence: float
    strategy: str
    measurements: pd.DataFrame
    configs: pd.DataFrame
    summary: dict[str, Any] | None
    best_pbtxt: str | None

    @property
    def store(self) -> RunStore:
        """The run directory's store (every path in it)."""
        return RunStore(self.dir)


def read_run_spec(store: RunStore) -> SweepSpec:
    """The run's spec.yaml, read by `analyzer.spec.spec` (its defaults for keys a partial or older
    spec leaves out); SpecError (a UsageError) naming the file when it is unreadable or not a
    tritune spec."""
    return load_spec(store.path("spec"), recorded=True)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory (complete or still being written); UsageError when it is not one."""
    store = RunStore.open_readonly(run_dir)
    spec = read_run_spec(store)
    measurements = store.measurements()
    configs = store.configs()
    for frame, columns in ((measurements, MEASUREMENT_COLUMNS), (configs, CONFIG_COLUMNS)):
        for col in columns:
            if col not in frame.columns:
                frame[col] = np.nan
    return RunData(
        dir=store.dir,
        model=spec.model,
        budget_ms=float(spec.budget_ms),
        percentile=float(spec.percentile),
        confidence=float(spec.confidence),
        strategy=spec.strategy,
        measurements=measurements,
        configs=configs,
        summary=store.read_summary(),
        best_pbtxt=store.read_best_config(spec.model),
    )


# -- rows and columns ---------------------------------------------------------------------------------


def latency_label(percentile: float) -> str:
    """How the budget percentile's latency is labelled ("p95"). Named after the column shown, so
    a label never claims a percentile whose values are not the ones drawn."""
    return percentile_field(percentile).removesuffix("_ms")


def num(value: Any) -> float:
    """A number, or NaN for blanks, text and None."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def finite(value: Any) -> bool:
    """True when `value` is a finite number (not a blank, text, None, NaN or infinity)."""
    return math.isfinite(num(value))
