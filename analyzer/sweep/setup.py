"""Set up and run a sweep from a spec: check what needs no server (analyzer.plan.preflight), open the
run directory, get a server, set up the workload on it (analyzer.workload.build: the base configs,
the search space), build the strategy, then hand over to the runner.

Also the resume rules: a run directory continues only with a spec that matches what it measured
(what a resumed run takes over is analyzer.sweep.policy's `adopt_finished`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy

from analyzer.config.modelconfig import ModelConfig, to_pbtxt
from analyzer.errors import RestoreError, SpecError, UsageError, WriteError
from analyzer.measure.levels import StopToken
from analyzer.plan.preflight import check_before_server
from analyzer.search import make_search
from analyzer.search.claims import asking_for
from analyzer.search.study import STUDY_NAME
from analyzer.server.originals import Originals, restore_failed_text
from analyzer.server.session import ServerSession, open_server
from analyzer.spec.spec import SweepSpec, load_spec, write_spec
from analyzer.store.db_tables import database_tables
from analyzer.store.identity import check_identity, server_identity, worker_name
from analyzer.store.rundir import RunStore
from analyzer.store.shared_storage import RetryingStorage, open_shared_storage
from analyzer.store.tables import TablesFactory
from analyzer.sweep.loop import Events, SweepResult, SweepRunner
from analyzer.sweep.policy import adopt_finished
from analyzer.workload.build import build_workload

# Keys that decide what a measurement means: a resumed run must not change them.
RESUME_KEYS = (
    "model",
    "budget_ms",
    "percentile",
    "confidence",
    "objective",
    "space",
    "models",
    "targets",
    "load",
    "inputs",
    "protocol",
)


@dataclass
class SweepOptions:
    """Command-line choices that are not part of the spec."""

    out: str | None = None
    resume: str | None = None
    server_port: int | None = None
    storage: str | None = None  # a shared study's database URL (None: the run directory's SQLite)
    study: str | None = None  # its study name


def incompatible_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Spec keys whose values differ between a run directory's spec and the one given. How
    many processes send the load (load.workers) does not change what is measured."""

    def key(data: dict[str, Any], k: str) -> Any:
        value = data.get(k)
        return (
            {n: v for n, v in value.items() if n != "workers"}
            if k == "load" and isinstance(value, dict)
            else value
        )

    return [k for k in RESUME_KEYS if key(old, k) != key(new, k)]


def resume_spec(store: RunStore, given: SweepSpec | None) -> SweepSpec:
    """The spec a resumed run continues with: its own spec.yaml (read by analyzer.spec.spec, as every
    spec is), or the one given when it measures the same thing (UsageError naming what differs)."""
    try:
        stored = load_spec(store.path("spec"))
    except SpecError as exc:
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


def _join_shared(
    spec: SweepSpec,
    options: SweepOptions,
    store: RunStore,
    session: ServerSession,
    base: ModelConfig,
    storage: RetryingStorage,
) -> tuple[Any, str]:
    """Join (or start) a shared study: the checks that make its workers comparable (same spec,
    same kind of server). Its tables are the store's (built in run_sweep)."""
    assert options.storage is not None
    study_name = options.study or STUDY_NAME
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        directions=["maximize"] if spec.objective == "throughput" else ["maximize", "minimize"],
    )
    mine = server_identity(session.control.server_metadata(), session.local is not None)
    attrs = study.user_attrs
    if "server_identity" in attrs:
        check_identity(study_name, attrs["server_identity"], mine)
        theirs = {
            k: v for k, v in (attrs.get("spec") or {}).items() if k not in ("load", "model_repository", "url")
        }
        ours = {k: v for k, v in spec.to_dict().items() if k not in ("load", "model_repository", "url")}
        differ = incompatible_keys(theirs, ours)
        if differ:
            raise UsageError(
                f"study {study_name!r} runs a different sweep: {', '.join(differ)} differ from its spec",
                hint="give every worker the same spec, or use another --study name",
            )
    else:
        # The identity last: it is what a joining worker looks for, so once it sees it, the
        # spec it checks against is there too (two workers starting at once could otherwise
        # read a study with an identity and no spec yet, and refuse it as a different sweep).
        study.set_user_attr("spec", spec.to_dict())
        study.set_user_attr("base_config", to_pbtxt(base))
        study.set_user_attr("model", spec.model)
        study.set_user_attr("server_identity", mine)
    return storage, study_name


@dataclass
class Kept:
    """What putting a running server's originals back left undone: one line per model."""

    failures: list[str] = field(default_factory=list)


@contextlib.contextmanager
def originals_kept(
    store: RunStore, session: ServerSession, stop: StopToken, notice: Callable[[str], None]
) -> Iterator[Kept]:
    """On a running server: record each model before tritune first changes it (analyzer.server.
    originals), and put every one back on the way out, however the sweep ends (an error, Ctrl-C,
    SIGTERM, SIGHUP), with further signals held off meanwhile. Failures to put back are in the
    yielded Kept; when the sweep itself raised, they raise a RestoreError (exit 4) naming both."""
    kept = Kept()
    if session.local is not None:
        yield kept  # our own server: stopped at the end, with the user's repository untouched
        return
    path = store.path("originals")
    resumed = path.exists()
    originals = Originals.open(path, session.url, session.protocol)
    if resumed:
        if originals.url != session.url:
            notice(f"the originals in {path} were recorded on {originals.url}; this run uses {session.url}")
        for line in originals.differences(session.control):
            notice(line)
    originals.attach(
        session.control,
        on_first=lambda: notice(
            f"tritune reconfigures live models on the server at {session.url}: it records each model's "
            f"config in {path} before changing it and puts it back when it ends; if tritune is killed, "
            f"`tritune restore {store.dir}` puts them back"
        ),
    )
    session.originals = originals

    def say(text: str) -> None:
        try:
            notice(text)
        except OSError:
            pass  # a terminal closed by SIGHUP must not cut the restore short

    def put_back() -> list[str]:
        with stop.shielded():  # a second Ctrl-C or SIGTERM must not leave half of them restored
            return [f"{name}: {why}" for name, why in originals.restore(session.control, say)]

    try:
        yield kept
    except BaseException as exc:
        kept.failures = put_back()
        if kept.failures:
            raise RestoreError(
                restore_failed_text(kept.failures, store.dir, path)
                + f"\n  the sweep itself had stopped: {exc}"
            ) from exc
        raise
    kept.failures = put_back()


def _shared_tables(options: SweepOptions, storage: RetryingStorage) -> TablesFactory:
    """A shared study's tables, connected when the run directory is made: every worker's rows in
    the database, this one's also in its run directory (analyzer.store.db_tables)."""
    assert options.storage is not None
    url, study_name = options.storage, options.study or STUDY_NAME
    return database_tables(url, study_name, worker_name(), retry=storage.retry, timings=storage.timings)


def run_sweep(
    spec: SweepSpec | None,
    options: SweepOptions,
    *,
    events: Events | None = None,
    stop: StopToken | None = None,
) -> tuple[SweepResult, RunStore]:
    """Run (or resume) a sweep; returns how it ended and where it was written. The run
    directory is locked against a second writer meanwhile."""
    events = events or Events()
    stop = stop or StopToken()
    # Everything that can be checked without a server is checked before one starts: the spec
    # (parsed by the caller), a shared study's database, the request data file and, in a local
    # model repository, the models and their search space (analyzer.plan.preflight).
    shared_storage = open_shared_storage(options.storage) if options.storage is not None else None
    tables = _shared_tables(options, shared_storage) if shared_storage is not None else None
    if options.resume:
        store = RunStore.open(options.resume, tables)
        store.lock()
    else:
        assert spec is not None
        check_before_server(spec)  # before the run directory: a refused spec leaves none behind
        store = RunStore.create(options.out, spec.model, tables=tables)
        store.lock()
    again = "the same command" if options.storage is not None else f"`tritune sweep --resume {store.dir}`"
    resume_hint = f"free space on that disk (or raise its limit), then run {again}: what was measured is kept"
    try:
        return _run_locked(store, spec, options, shared_storage, events, stop)
    except WriteError as exc:
        exc.hint = resume_hint
        raise
    except (sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError) as exc:
        if options.storage is not None:
            raise  # a shared study's database: not a file of this run
        # The run's own SQLite study (Optuna wraps SQLAlchemy's error in StorageInternalError).
        cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
        reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
        raise WriteError(store.path("study"), reason, hint=resume_hint) from None
    finally:
        store.release()
        store.tables.close()
        if shared_storage is not None:
            shared_storage.close()


def _run_locked(
    store: RunStore,
    spec: SweepSpec | None,
    options: SweepOptions,
    shared_storage: RetryingStorage | None,
    events: Events,
    stop: StopToken,
) -> tuple[SweepResult, RunStore]:
    notice = events.notice or events.message or (lambda text: None)
    previous_wall = 0.0
    if options.resume:
        spec = resume_spec(store, spec)
        check_before_server(spec)
        for note in store.repair_tables():
            notice(note)
        summary = store.read_summary() or {}
        previous_wall = float(summary.get("wall_s") or 0.0)
    assert spec is not None
    write_spec(spec, store.path("spec"))
    with (
        open_server(
            protocol=spec.protocol,
            url=spec.url,
            model_repository=spec.model_repository,
            log_path=store.path("server_log"),
            triton_server_path=spec.triton_server_path,
            server_port=options.server_port,
            metrics_port=spec.metrics_port,
            load_timeout_s=spec.load_timeout_s,
        ) as session,
        originals_kept(store, session, stop, notice) as kept,
    ):
        workload = build_workload(spec, session, store)
        storage, study_name = store.storage_url, STUDY_NAME
        if shared_storage is not None:
            storage, study_name = _join_shared(spec, options, store, session, workload.base, shared_storage)
        search = make_search(
            spec.strategy,
            candidates=workload.candidates,
            storage=storage,
            study_name=study_name,
            claims=asking_for(store.tables.claims()),
            budget_ms=spec.budget_ms,
            objective=spec.objective,
            max_trials=spec.max_trials,
            time_budget_s=spec.time_budget_s,
            patience=spec.patience if spec.strategy == "optuna" else None,
            seed=spec.seed,
            base=workload.start,
        )
        if options.resume:
            store.keep_only_configs(
                adopt_finished(store.configs(), store.measurements(), spec.percentile, search)
            )
        runner = SweepRunner(
            spec, store, session, workload, search, events=events, stop=stop, previous_wall_s=previous_wall
        )
        result = runner.run()
    result.restore_failures = kept.failures
    return result, store
