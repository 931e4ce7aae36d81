"""A shared study's run directory, written from its database: what `tritune report --storage`
and `tritune dash --storage` read, so the report and the dashboard work on a study that many
workers filled exactly as on one worker's run directory.

The spec, the model's base config and the server identity are study attributes (the first
worker sets them); the tables are every worker's rows (analyzer.store.db_tables); the summary and the
best config.pbtxt are rebuilt by the same functions a sweep uses.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import yaml

from analyzer.config.modelconfig import apply_candidate, parse_pbtxt, to_pbtxt
from analyzer.config.pipeline import candidate_from_row
from analyzer.errors import UsageError
from analyzer.files import write_atomic
from analyzer.judge.choose import build_summary, choice
from analyzer.report import read_run_spec, write_report
from analyzer.store.db_tables import database_tables
from analyzer.store.rundir import RunStore
from analyzer.store.shared_storage import RetryingStorage, open_shared_storage
from analyzer.store.storage_url import redact


def load_shared_study(storage: RetryingStorage, url: str, study_name: str) -> optuna.Study:
    """The study, or UsageError (exit 2) for an unknown study (naming the studies the database
    has)."""
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        raise UsageError(
            f"no study {study_name!r} in the database at {redact(url)}; it has: {', '.join(names) or 'none'}",
            hint="check --study",
        ) from None


def export_study(url: str, study_name: str, out_dir: str | Path | None) -> RunStore:
    """Write (or refresh) the study's run directory under `out_dir` (default reports/), named
    <model>-<study>; returns its store."""
    storage = open_shared_storage(url)  # a bad URL or an unreachable database: UsageError
    try:
        return _export(storage, url, study_name, out_dir)
    finally:
        storage.close()


def _export(storage: RetryingStorage, url: str, study_name: str, out_dir: str | Path | None) -> RunStore:
    study = load_shared_study(storage, url, study_name)
    attrs = study.user_attrs
    if "spec" not in attrs:
        raise UsageError(f"study {study_name!r} was not made by tritune sweep --storage (it has no spec)")
    tables = database_tables(url, study_name, "report")
    store = RunStore.for_study(out_dir, str(attrs["spec"]["model"]), study_name, tables)
    write_atomic(store.path("spec"), yaml.safe_dump(attrs["spec"], sort_keys=False))
    spec = read_run_spec(store)  # spec.py's reading and defaults, as the report's
    model = spec.model
    base_text = str(attrs.get("base_config") or "")
    write_atomic(store.path("base_config"), base_text)
    configs, measurements = store.tables.export()
    best, _, _ = choice(configs, measurements, spec.percentile)
    best_path = None
    if best is not None and base_text:
        # The study records the base config of the model under load only: a pipeline's tuned
        # models are named parts, the one model's candidate is the part named ''.
        own = dict(candidate_from_row(best).parts).get("")
        if own is not None:
            config = apply_candidate(parse_pbtxt(base_text), own)
            best_path = store.write_best_config(model, to_pbtxt(config))
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    wall_s = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0  # first start to last end
    summary = build_summary(
        model=model,
        budget_ms=float(spec.budget_ms),
        percentile=float(spec.percentile),
        strategy=spec.strategy,
        load_mode=spec.load.level_kind,
        wall_s=wall_s,
        configs=configs,
        measurements=measurements,
        best_pbtxt=str(best_path) if best_path else None,
        model_pbtxts=None,
        finished=not any(t.state == optuna.trial.TrialState.RUNNING for t in trials),
        stopped_reason="",
    )
    summary["study"] = study_name
    summary["workers"] = sorted({str(w) for w in measurements.get("worker", []) if isinstance(w, str)})
    summary["server_identity"] = attrs.get("server_identity")
    store.write_json("summary", summary)
    write_report(store.dir)
    store.tables.close()
    return store
