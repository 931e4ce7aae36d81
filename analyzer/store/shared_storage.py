"""A shared study's Optuna storage: RDBStorage with heartbeats and the retry of a dead worker's
trial, every call retried while the database is briefly down (analyzer.store.db_retry).

`RetryingStorage` is an Optuna storage (BaseStorage, and BaseHeartbeat so that Optuna's
`fail_stale_trials` works on it) that hands each call to Optuna's own cached RDB storage
through `DbRetry.call`. Recording a heartbeat is not retried here: the heartbeat thread
(analyzer.search.heartbeat) keeps trying on its own cadence.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage

# The one private Optuna name tritune uses: Optuna decides whether a storage has heartbeats by
# `isinstance(storage, BaseHeartbeat)` and exports no public alias (5.1), so a wrapper of
# RDBStorage must inherit it for failed-stale-trial detection to keep working.
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from analyzer.errors import UsageError
from analyzer.store.db_retry import DbRetry
from analyzer.store.shared_timing import SharedTimings, timings_from_env
from analyzer.store.storage_url import redact, scrub
from analyzer.store.study_tables import engine_for, engine_options, retry_schema_race

T = TypeVar("T")


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """Optuna's RDB storage (with its trial cache) whose calls wait out a database outage."""

    def __init__(self, backend: RDBStorage, retry: DbRetry, timings: SharedTimings) -> None:
        self.backend = backend
        self.retry = retry
        self.timings = timings
        # Optuna's own wrapping of an RDBStorage given directly: its trial cache.
        self._inner = optuna.storages.get_storage(backend)

    def close(self) -> None:
        """Close the database connections (a sweep's end; a long-lived process opens many)."""
        self.backend.engine.dispose()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return self.retry.call(fn, what)

    # -- studies --------------------------------------------------------------------------------
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        """Create a study (retried while the database is down)."""
        return self._call("creating the study", lambda: self._inner.create_new_study(directions, study_name))

    def delete_study(self, study_id: int) -> None:
        """Delete a study."""
        self._call("deleting the study", lambda: self._inner.delete_study(study_id))

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        """Set a study's user attribute."""
        self._call("writing the study", lambda: self._inner.set_study_user_attr(study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        """Set a study's system attribute."""
        self._call("writing the study", lambda: self._inner.set_study_system_attr(study_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        """A study's id by name (KeyError: no such study)."""
        return self._call("reading the study", lambda: self._inner.get_study_id_from_name(study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        """A study's name by id."""
        return self._call("reading the study", lambda: self._inner.get_study_name_from_id(study_id))

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        """A study's optimisation directions."""
        return self._call("reading the study", lambda: self._inner.get_study_directions(study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        """A study's user attributes."""
        return self._call("reading the study", lambda: self._inner.get_study_user_attrs(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        """A study's system attributes."""
        return self._call("reading the study", lambda: self._inner.get_study_system_attrs(study_id))

    def get_all_studies(self) -> list[Any]:
        """Every study in the database."""
        return self._call("listing the studies", lambda: self._inner.get_all_studies())

    # -- trials ---------------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """Create a trial (an ask, or an enqueued config)."""
        return self._call("creating a trial", lambda: self._inner.create_new_trial(study_id, template_trial))

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        """Set a trial's parameter."""
        self._call(
            "writing a trial",
            lambda: self._inner.set_trial_param(trial_id, param_name, param_value_internal, distribution),
        )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        """A trial's id by its number."""
        return self._call(
            "reading a trial",
            lambda: self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number),
        )

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        """The study's best trial."""
        return self._call("reading the trials", lambda: self._inner.get_best_trial(study_id))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Set a trial's state (and values): a tell, a fail, or a waiting trial popped."""
        return self._call(
            "telling a trial", lambda: self._inner.set_trial_state_values(trial_id, state, values)
        )

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        """Set a trial's intermediate value."""
        self._call(
            "writing a trial",
            lambda: self._inner.set_trial_intermediate_value(trial_id, step, intermediate_value),
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Set a trial's user attribute."""
        self._call("writing a trial", lambda: self._inner.set_trial_user_attr(trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Set a trial's system attribute."""
        self._call("writing a trial", lambda: self._inner.set_trial_system_attr(trial_id, key, value))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """One trial."""
        return self._call("reading a trial", lambda: self._inner.get_trial(trial_id))

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """A study's trials."""
        return self._call(
            "reading the trials", lambda: self._inner.get_all_trials(study_id, deepcopy, states)
        )

    def remove_session(self) -> None:
        """Release the storage's database session."""
        self._inner.remove_session()

    # -- heartbeats (the RDB storage's own: its trial cache delegates them to it) -----------------
    def record_heartbeat(self, trial_id: int) -> None:
        """Record a trial's heartbeat once (not retried: the heartbeat thread tries again)."""
        self.backend.record_heartbeat(trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # BaseHeartbeat's abstract method (the name is Optuna's): what fail_stale_trials asks.
        return self._call("looking for dead workers", lambda: self.backend._get_stale_trial_ids(study_id))

    def get_heartbeat_interval(self) -> int | None:
        """Seconds between a running trial's heartbeats."""
        return self.backend.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        """What happens to a trial whose heartbeat went stale: it is retried."""
        return self.backend.get_heartbeat_stale_trial_callback()


def open_shared_storage(url: str, timings: SharedTimings | None = None) -> RetryingStorage:
    """A shared study's storage, with heartbeats: a worker that dies mid-config has its trial
    failed after the grace period and retried (put back in the queue) for another worker.
    Bad URLs and databases that cannot be reached now are UsageErrors (exit 2): a worker starts
    only on a database it can use."""
    timings = timings or timings_from_env()
    engine_for(url).dispose()  # the URL's form and driver, checked with a clear message
    options = engine_options(url)

    def make() -> RDBStorage:
        with warnings.catch_warnings():
            # Heartbeats are marked experimental in Optuna; shared studies rely on them.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                heartbeat_interval=timings.heartbeat_s,
                grace_period=timings.grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
                engine_kwargs=options,
            )

    try:
        backend = retry_schema_race(make)
    except sqlalchemy.exc.OperationalError as exc:
        retry = DbRetry(url, timings.retry_s)
        raise UsageError(
            f"cannot reach the database at --storage {redact(url)}: {retry.describe(exc)}",
            hint="check the host, port, user and password, and that the database exists",
        ) from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise UsageError(
            f"--storage {redact(url)} is not a database URL Optuna can use: {scrub(str(exc), url)}"
        ) from None
    return RetryingStorage(backend, DbRetry(url, timings.retry_s), timings)
