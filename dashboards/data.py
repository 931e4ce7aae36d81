"""The data behind the dashboard: one run directory read through `RunStore`, re-read when a
sweep writes to it, and the questions the callbacks ask of it (filtered tables, the knob values
present, a config's knobs, deployable config.pbtxt and capacity). No Dash components here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analyzer.config.modelconfig import Candidate, apply_candidate, read_pbtxt, to_pbtxt
from analyzer.config.pipeline import JointCandidate, candidate_from_row
from analyzer.errors import UsageError
from analyzer.judge.choose import confirmed_choice
from analyzer.report import RunData, capacity_under_budget, is_sweep_budget, latency_label, load_run
from analyzer.schema import percentile_field
from analyzer.store.rundir import RunStore

DELAY_OFF = -1  # filter value for "no dynamic batching"


def delay_value(v: Any) -> int:
    """A queue delay cell as a filter value: DELAY_OFF for no dynamic batching (blank/NaN)."""
    return DELAY_OFF if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


class RunView:
    """A run directory as the dashboard sees it: the latest complete read of its files."""

    def __init__(self, run_dir: str | Path) -> None:
        self.store = RunStore.open_readonly(run_dir)  # UsageError when it is not a run directory
        self.run_dir = self.store.dir
        # Stamped before the read, as refresh() does: a write during the read shows next tick.
        self._version: tuple[int, ...] = self.version()
        self.run: RunData = load_run(self.run_dir)  # raises UsageError on a bad directory

    # -- following a sweep ---------------------------------------------------------------------
    def version(self) -> tuple[int, ...]:
        """The stamps of the files the page shows (RunStore.version): they change whenever a
        sweep writes."""
        return self.store.version()

    def refresh(self) -> bool:
        """Re-read the run directory if it changed; True when it did. A read that fails (a table
        caught half rewritten, as a shared study's export does in place) keeps the last data and
        is tried again on the next call."""
        current = self.version()
        if current == self._version:
            return False
        try:
            self.run = load_run(self.run_dir)
        except UsageError:
            return False
        self._version = current
        return True

    # -- the run's contents --------------------------------------------------------------------
    def filtered(
        self, counts: list[int] | None, batches: list[int] | None, delays: list[int] | None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Measurements and configs limited to the chosen knob values (None = all)."""
        m, c = self.run.measurements, self.run.configs
        if m.empty:
            return m, c
        keep = pd.Series(True, index=m.index)
        keep_c = pd.Series(True, index=c.index)
        if self.pipeline:
            batches = delays = None  # a pipeline's batching is per model: only instances filter
        if counts is not None:
            keep &= m["instance_count"].astype(int).isin(counts)
            keep_c &= c["instance_count"].astype(int).isin(counts)
        if batches is not None:
            keep &= m["max_batch_size"].astype(int).isin(batches)
            keep_c &= c["max_batch_size"].astype(int).isin(batches)
        if delays is not None:
            keep &= m["max_queue_delay_us"].apply(delay_value).isin(delays)
            keep_c &= c["max_queue_delay_us"].apply(delay_value).isin(delays)
        return m[keep], c[keep_c]

    def options(self) -> dict[str, list[int]]:
        """The knob values present in the run (for the filters)."""
        c = self.run.configs
        if c.empty:
            return {"counts": [], "batches": [], "delays": []}
        counts = sorted(c["instance_count"].astype(int).unique().tolist())
        if self.pipeline:
            return {"counts": counts, "batches": [], "delays": []}
        return {
            "counts": counts,
            "batches": sorted(c["max_batch_size"].astype(int).unique().tolist()),
            "delays": sorted({delay_value(v) for v in c["max_queue_delay_us"]}),
        }

    def budget_range(self) -> tuple[float, float]:
        """Slider bounds: from 0 to a bit above the highest budget-percentile latency measured."""
        column = percentile_field(self.run.percentile)
        latency = pd.to_numeric(
            self.run.measurements.get(column, pd.Series(dtype=float)), errors="coerce"
        ).dropna()
        hi = max(self.run.budget_ms * 2, float(latency.max()) * 1.1 if not latency.empty else 0.0)
        return 0.0, float(f"{hi:.3g}")

    @property
    def label(self) -> str:
        """The budget percentile's label ("p95")."""
        return latency_label(self.run.percentile)

    @property
    def pipeline(self) -> bool:
        """Whether the run tuned a pipeline (per-model knob columns)."""
        return any(str(k).endswith(".instance_count") for k in self.run.configs.columns)

    def candidate(self, config_id: str) -> Candidate | JointCandidate | None:
        """The knobs of a config of this run."""
        rows = self.run.configs[self.run.configs["config_id"] == config_id]
        return None if rows.empty else candidate_from_row(rows.iloc[-1])

    def config_pbtxts(self, config_id: str) -> dict[str, str]:
        """Deployable config.pbtxt of each tuned model of any config of the run (from the saved
        base configs); {} when the config or its base is unknown."""
        cand = self.candidate(config_id)
        if cand is None:
            return {}
        joint = isinstance(cand, JointCandidate)
        parts = cand.parts if isinstance(cand, JointCandidate) else ((self.run.model, cand),)
        out = {}
        for name, part in parts:
            base_path = self.store.model_base_path(name) if joint else self.store.path("base_config")
            if not base_path.is_file():
                return {}
            config = apply_candidate(read_pbtxt(base_path), part)
            config.name = name
            out[name] = to_pbtxt(config)
        return out

    def capacity_of(self, config_id: str, budget: float) -> tuple[float, str]:
        """(capacity, where it comes from) of a config at a budget: at the sweep's budget the
        confirmation round's mean where the round counted it (the capacity the answer shows for
        it), else the best search level under the budget."""
        if is_sweep_budget(self.run, budget):
            # Alone, a config is the confirmed pick exactly when the round counted it.
            alone = confirmed_choice(
                self.run.configs[self.run.configs["config_id"] == config_id], self.run.measurements
            )
            if alone is not None:
                return float(alone[0]["confirmed_rps"]), "the confirmation round's mean"
        caps = capacity_under_budget(
            self.run.measurements, budget, self.run.percentile, self.run.confidence
        ).set_index("config_id")
        capacity = float(caps.loc[config_id, "capacity_rps"]) if config_id in caps.index else 0.0
        return capacity, "the search's capacity"
