"""Set up and run a sweep from a spec: resolve it, open the run directory, get a server, read
the model's base config, build the search space and strategy, then hand over to the runner.

Also the resume rules: a run directory continues only with a spec that matches what it measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analyzer.errors import SpecError, UsageError
from analyzer.modelconfig import from_dict, read_pbtxt, to_dict, to_pbtxt
from analyzer.profiler import StopToken
from analyzer.runner import Events, SweepResult, SweepRunner
from analyzer.search import make_search
from analyzer.search.base import Outcome
from analyzer.server.session import open_server, prepare_model
from analyzer.space import Candidate, ModelTraits, check_space
from analyzer.spec import SweepSpec, spec_from_dict, write_spec
from analyzer.store import RunStore

# Keys that decide what a measurement means: a resumed run must not change them.
RESUME_KEYS = ("model", "budget_ms", "percentile", "confidence", "objective", "space", "load", "inputs", "protocol")


@dataclass
class SweepOptions:
    """Command-line choices that are not part of the spec."""

    out: str | None = None
    resume: str | None = None
    server_port: int | None = None


def incompatible_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Spec keys whose values differ between a run directory's spec and the one given. How
    many processes send the load (load.workers) does not change what is measured."""
    def key(data: dict[str, Any], k: str) -> Any:
        value = data.get(k)
        return {n: v for n, v in value.items() if n != "workers"} if k == "load" and isinstance(value, dict) else value

    return [k for k in RESUME_KEYS if key(old, k) != key(new, k)]


def _resume_spec(store: RunStore, given: SweepSpec | None) -> SweepSpec:
    path = store.path("spec")
    try:
        saved = yaml.safe_load(path.read_text())
        stored = spec_from_dict(saved, str(path))
    except (OSError, yaml.YAMLError, SpecError) as exc:
        raise UsageError(f"cannot resume {store.dir}: its spec.yaml is unreadable ({exc})") from None
    if given is None:
        return stored
    differ = incompatible_keys(stored.to_dict(), given.to_dict())
    if differ:
        raise UsageError(
            f"cannot resume {store.dir} with {given.source}: it was measured with a different "
            f"{', '.join(differ)}",
            hint="resume without a spec (the run's own spec.yaml is used), or start a new run",
        )
    return given


def _adopt_finished(store: RunStore, search: Any, valid: set[Candidate]) -> None:
    """Configs in configs.csv are finished: make sure the search knows them, and drop rows of
    any config that was in flight when the previous run died (it is measured again)."""
    configs = store.configs()
    finished: set[str] = set()
    for _, row in configs.iterrows():
        cand = Candidate.from_row(row)
        finished.add(str(row["config_id"]))
        capacity = float(row.get("capacity_rps") or 0.0)
        p99 = float(row["p99_ms"]) if not math.isnan(float(row.get("p99_ms", math.nan))) else float(row.get("closest_p99_ms", math.nan))
        search.adopt(cand, Outcome(capacity, p99, failed=row["status"] == "failed", error=str(row.get("error") or "")))
    store.keep_only_configs(finished)


def run_sweep(spec: SweepSpec | None, options: SweepOptions, *, events: Events | None = None,
              stop: StopToken | None = None) -> tuple[SweepResult, RunStore]:
    """Run (or resume) a sweep; returns how it ended and where it was written."""
    previous_wall = 0.0
    if options.resume:
        store = RunStore.open(options.resume)
        spec = _resume_spec(store, spec)
        summary = store.read_summary() or {}
        previous_wall = float(summary.get("wall_s") or 0.0)
    else:
        assert spec is not None
        store = RunStore.create(options.out, spec.model)
    write_spec(spec, store.path("spec"))
    with open_server(
        protocol=spec.protocol,
        url=spec.url,
        model_repository=spec.model_repository,
        log_path=store.path("server_log"),
        triton_server_path=spec.triton_server_path,
        server_port=options.server_port,
        metrics_port=spec.metrics_port,
        load_timeout_s=spec.load_timeout_s,
    ) as session:
        info = prepare_model(session, spec.model, spec.inputs, load=session.local is not None)
        base = None
        if spec.model_repository is not None:
            file = Path(spec.model_repository) / spec.model / "config.pbtxt"
            if file.is_file():
                base = read_pbtxt(file)
        if base is None:  # remote server, or a model whose config the server completes itself
            base = from_dict(info.config)
        base.name = spec.model
        store.path("base_config").write_text(to_pbtxt(base))
        if session.local is None:
            # Pre-flight on a running server: can configs be applied at all (explicit
            # model-control mode)? Reloading the current config answers before anything is measured.
            session.control.load_model(spec.model, to_dict(base))
        traits = ModelTraits.of(base)
        candidates = check_space(spec.space, traits, spec.source)
        search = make_search(
            spec.strategy,
            candidates=candidates,
            storage_url=store.storage_url,
            budget_ms=spec.budget_ms,
            objective=spec.objective,
            max_trials=spec.max_trials,
            time_budget_s=spec.time_budget_s,
            patience=spec.patience if spec.strategy == "optuna" else None,
            seed=spec.seed,
            base=traits.base,
        )
        if options.resume:
            _adopt_finished(store, search, set(candidates))
        runner = SweepRunner(spec, store, session, info, base, search, events=events, stop=stop,
                             previous_wall_s=previous_wall)
        return runner.run(), store
