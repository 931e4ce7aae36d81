"""A shared study's asking (`SharedAsk`): which worker measures which config, and that it is
still alive doing so.

Each config is claimed by one trial in the shared tables (analyzer.store.study_tables); the trial's
heartbeat (analyzer.search.heartbeat, through the storage's `record_heartbeat`) shows that its
worker lives. A trial whose heartbeat went stale is failed by the next worker that looks
(`optuna.storages.fail_stale_trials`), its config comes back as a waiting retry, and the claim
is taken over along with dropping the rows the dead worker left. While other workers still
measure the last configs, a worker with nothing to do waits for them, so that a dead worker's
config is picked up. Only Optuna's public API is used: trials are found by number through the
storage the search opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from analyzer.errors import ClaimLostError
from analyzer.search.asking import NOTHING_LEFT, AskingSearch
from analyzer.search.heartbeat import Heartbeat
from analyzer.store.study_tables import SharedTables

SHARED_POLL_S = 2.0  # a shared study's idle worker looks for work this often


def asking_for(tables: SharedTables | None) -> SharedAsk | None:
    """A run's asking over its claim tables: a shared study's SharedAsk, None (a local run's
    LocalAsk, which Search makes itself) when the run has no claims."""
    return SharedAsk(tables) if tables is not None else None


class SharedAsk:
    """A shared study's asking over its claim tables (analyzer.store.study_tables.SharedTables)."""

    def __init__(self, tables: SharedTables) -> None:
        self.tables = tables
        self._heartbeat: Heartbeat | None = None  # the current trial's
        self._study_id: int | None = None  # the study's id in its storage (read once)

    @property
    def heartbeat(self) -> Heartbeat | None:
        """The heartbeat of the trial being measured (None between trials)."""
        return self._heartbeat

    # -- the study, through public storage methods ---------------------------------------------
    def _trial_id(self, search: AskingSearch, number: int) -> int:
        """The storage's id of the study's trial `number`."""
        if self._study_id is None:
            self._study_id = search.storage.get_study_id_from_name(search.study.study_name)
        return search.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def _state(self, search: AskingSearch, number: int) -> TrialState:
        """A trial's state as the study holds it now (another worker may have failed it)."""
        return search.storage.get_trial(self._trial_id(search, number)).state

    # -- history --------------------------------------------------------------------------------
    def unfinished(self, search: AskingSearch, trial: optuna.trial.FrozenTrial, cand: Any) -> bool:
        """Another worker's running trial is alive (a dead one's heartbeat fails it): its config
        is busy. A failed unmeasured one comes back as a WAITING retry that ask() pops."""
        if trial.state == TrialState.RUNNING and trial.number != search.trial_number:
            search.busy.add(cand)
            return True
        return False

    def _refresh(self, search: AskingSearch) -> None:
        """Fail the trials of dead workers (their configs go back to the queue), then read every
        worker's results and which configs are being measured.

        Not within a grace period of a database outage that this worker saw: nobody could write
        a heartbeat while it was down, so a stale one then is no sign that its worker died. The
        grace period after it gives every live worker time to beat again."""
        if self.tables.retry.quiet_for(self.tables.timings.grace_s):
            fail_stale_trials(search.study)
        search.reload()

    def others_busy(self, search: AskingSearch) -> bool:
        """Whether another worker measures a config now (dead workers' trials failed first)."""
        self._refresh(search)
        return bool(search.busy)

    # -- ask ------------------------------------------------------------------------------------
    def ask(self, search: AskingSearch, keep_waiting: Callable[[], bool]) -> Any | None:
        """The next config, claimed before it is returned; while others still measure the last
        configs, this waits (`keep_waiting()` False: give up) so that a dead worker's config,
        failed by its heartbeat and retried, is picked up here."""
        while True:
            self._refresh(search)
            reason = search.stop_check()
            if reason:
                search.stop_reason = reason
                return None
            waiting = any(t.state == TrialState.WAITING for t in search.study.get_trials(deepcopy=False))
            proposal = None if waiting else search.proposal()
            if proposal is None and not waiting:
                if not search.busy:
                    search.stop_reason = search.stop_reason or NOTHING_LEFT
                    return None
                if not keep_waiting():
                    search.stop_reason = "stopped while other workers measure the last configs"
                    return None
                time.sleep(SHARED_POLL_S)
                continue
            if proposal is not None and proposal[1] is not None:
                trial = proposal[1]
            elif proposal is not None:
                trial = search.pin(proposal[0])
            else:
                trial = search.study.ask(
                    search.encoding.distributions
                )  # pops the oldest waiting trial (atomically)
            # The heartbeat first: a worker that dies from here on leaves a trial that goes stale
            # (a trial that never beat is never failed by Optuna, and its claim would be stuck).
            search.hold(trial, None)
            try:
                self._start_heartbeat(search, trial)
                cand = search.encoding.decode(trial.params)
                taken = cand not in search.valid or cand in search.outcomes
                if taken or not self._claim(search, cand.config_id, trial.number):
                    self.let_go()
                    search.hold(None, None)
                    trial.set_user_attr("claimed_elsewhere", True)
                    search.study.tell(trial, state=TrialState.FAIL)
                    continue
                search.hold(trial, cand)
                search.tag(trial, cand)
            except BaseException as exc:
                search.leave(exc)
                raise
            return cand

    def _start_heartbeat(self, search: AskingSearch, trial: optuna.trial.Trial) -> None:
        """Keep the trial alive in the study while this worker has it (a daemon thread: it never
        keeps the process alive, and it outlives a failed write). A storage without heartbeats
        (no interval set) has none."""
        storage = search.storage
        interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
        if interval is None:
            return
        trial_id = self._trial_id(search, trial.number)
        self._heartbeat = Heartbeat(
            lambda: storage.record_heartbeat(trial_id),  # type: ignore[attr-defined]
            interval,
            retry=self.tables.retry,
            name=f"heartbeat-trial-{trial.number}",
        ).start()

    def _claim(self, search: AskingSearch, config_id: str, number: int) -> bool:
        """Claim a config for a trial: a new claim, or one whose trial died (failed by its
        heartbeat), taken over along with dropping the rows the dead worker left."""
        tables = self.tables
        if tables.claim(config_id, number):
            return True
        held = tables.holder(config_id)
        if held is None:
            return tables.claim(config_id, number)
        old, _ = held
        if self._state(search, old) == TrialState.RUNNING or not tables.take_over(config_id, old, number):
            return False
        tables.drop_trial_rows(config_id, old)
        return True

    # -- tell, drop, abandon --------------------------------------------------------------------
    def check_held(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any) -> None:
        """ClaimLostError unless this worker's trial still runs and still holds its config's claim
        (a worker whose heartbeat went stale has lost both)."""
        held = self.tables.holder(cand.config_id)
        if (
            held != (trial.number, self.tables.worker)
            or self._state(search, trial.number) != TrialState.RUNNING
        ):
            by = (
                f"by {held[1]}" if held is not None and held[1] != self.tables.worker else "by another worker"
            )
            raise ClaimLostError(
                f"config {cand.config_id} was taken over {by} while this worker measured it: its "
                "heartbeat was stale for longer than the grace period"
            )

    def refused(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any) -> None:
        """Failed by another worker between the check and the tell (its heartbeat was stale):
        ClaimLostError. A trial that still runs was refused for another reason: Optuna's error
        goes on."""
        if self._state(search, trial.number) == TrialState.RUNNING:
            return
        raise ClaimLostError(
            f"config {cand.config_id}'s trial was failed by another worker while this one "
            "measured it: its heartbeat was stale for longer than the grace period"
        ) from None

    def let_go(self) -> None:
        """Stop the current trial's heartbeat."""
        beat, self._heartbeat = self._heartbeat, None
        if beat is not None:
            beat.stop()

    def abandon(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any | None) -> None:
        """Give the config to another worker at once: its rows dropped, its claim released, its
        trial failed and its config queued again."""
        if cand is not None:
            # Rows first: once the claim is free another worker may claim the config and
            # start writing rows of its own for it.
            self.tables.drop_trial_rows(cand.config_id, trial.number)
            self.tables.release(cand.config_id, trial.number)
        trial.set_user_attr("abandoned", True)  # a resumed run measures it first
        search.study.tell(trial, state=TrialState.FAIL)
        if cand is not None:
            # Back to the queue for another worker (or a resume).
            search.study.enqueue_trial(search.encoding.encode(cand), user_attrs=dict(trial.user_attrs))
