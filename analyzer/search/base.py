"""What every search shares: the bookkeeping of measured, failed and in-flight configs over the
run's Optuna study (analyzer.search.study), the stopping rules, and a shared study's asking
(its claims are analyzer.search.claims, its heartbeats analyzer.search.heartbeat)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import fail_stale_trials
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from analyzer.config.modelconfig import Candidate
from analyzer.config.pipeline import JointCandidate
from analyzer.errors import ClaimLostError, DatabaseError
from analyzer.search.bound import plausible
from analyzer.search.claims import claim_config
from analyzer.search.heartbeat import Heartbeat
from analyzer.search.study import STUDY_NAME, Encoding, Outcome, open_study, set_budget_constraint

SHARED_POLL_S = 2.0  # a shared study's idle worker looks for work this often


def _latency_attr(attrs: dict[str, Any]) -> float:
    """A trial's budget-percentile latency. Studies written before the attribute was named for the
    budget's percentile kept it as `p99_ms` (their sweeps judged p99 or stored it there)."""
    value = attrs.get("latency_ms", attrs.get("p99_ms"))
    return math.nan if value is None else float(value)


class Search:
    """Ask/tell over candidates, recorded in an Optuna study.

    Subclasses choose the next candidate (`_propose`); this class keeps the study in step: each
    measured config is one trial with its config_id, capacity and p99 as user attributes.
    Configs already measured (a resumed run, or a repeated proposal) are never measured twice.

    The contract every registered strategy keeps (tests/unit/test_search_conformance.py): ask()
    returns only candidates of the space, never one twice, and None once the space is measured
    or max_trials reached; a search on a study with finished configs goes on from them; a config
    abandoned by a stopped run is asked first when the run resumes; with `starts_at_base`, the
    first config asked is `base` (the model's current config).
    """

    strategy = "base"  # the name it is registered under (analyzer.search.registry)
    stop_when_implausible = False  # stop once no unmeasured config can plausibly beat the best
    starts_at_base = False  # the first config asked is `base` when it is in the space

    def __init__(
        self,
        *,
        candidates: Sequence[Candidate | JointCandidate],
        storage_url: str,
        budget_ms: float,
        objective: str = "throughput",
        max_trials: int | None = None,
        time_budget_s: float | None = None,
        patience: int | None = None,
        seed: int = 0,
        base: Candidate | JointCandidate | None = None,
        study_name: str = STUDY_NAME,
        shared: Any = None,
    ) -> None:
        if not candidates:
            raise ValueError("no candidates to search")
        self.candidates = list(candidates)
        self.valid = set(self.candidates)
        self.budget_ms = budget_ms
        self.objective = objective
        self.max_trials = max_trials
        self.time_budget_s = time_budget_s
        self.patience = patience
        self.seed = seed
        self.base = base
        self.started = time.monotonic()
        self.encoding = Encoding(self.candidates)
        self.dists = self.encoding.distributions
        self.directions: list[Literal["minimize", "maximize"]] = (
            ["maximize"] if objective == "throughput" else ["maximize", "minimize"]
        )
        # Shared (analyzer.store.shared.SharedTables): other workers measure the same study at once;
        # each config is claimed by one trial, and `busy` holds the configs others measure now.
        self.shared = shared
        self.busy: set[Candidate | JointCandidate] = set()
        self.study = open_study(storage_url, self.directions, self._sampler(), study_name)
        self.outcomes: dict[Candidate | JointCandidate, Outcome] = {}
        self.in_flight: list[
            Candidate | JointCandidate
        ] = []  # running when a previous run died: measure first
        self._trial: optuna.trial.Trial | None = None
        self._current: Candidate | JointCandidate | None = None
        self._heartbeat: Heartbeat | None = None  # shared: the current trial's
        self.measured_this_run = 0
        self.stop_reason = ""
        self._load_history()

    # -- to override ----------------------------------------------------------------------------
    def _sampler(self) -> optuna.samplers.BaseSampler | None:
        return None

    def _propose(self) -> tuple[Candidate | JointCandidate, optuna.trial.Trial | None] | None:
        """The next candidate, with the study trial that proposed it if the sampler made one."""
        raise NotImplementedError

    # -- history --------------------------------------------------------------------------------
    def _load_history(self) -> None:
        self.busy = set()
        for t in self.study.get_trials(deepcopy=False):
            if "config_id" not in t.user_attrs or "params" not in t.user_attrs:
                continue  # not tagged yet (its config is claimed, so nobody else measures it)
            cand = self.encoding.factory(t.user_attrs["params"])
            if self.shared is not None:
                # Another worker's running trial is alive (a dead one's heartbeat fails it); a
                # failed unmeasured one comes back as a WAITING retry that ask() pops.
                if t.state == TrialState.RUNNING and (self._trial is None or t.number != self._trial.number):
                    self.busy.add(cand)
                elif t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.user_attrs.get("measured"):
                    self.outcomes[cand] = self._outcome_of(t)
                continue
            if t.state == TrialState.RUNNING or (
                t.state == TrialState.FAIL and t.user_attrs.get("abandoned")
            ):
                # Being measured when the run died (or stopped): measure it again, first.
                if t.state == TrialState.RUNNING:
                    self.study.tell(t.number, state=TrialState.FAIL)
                if cand in self.valid and cand not in self.in_flight:
                    self.in_flight.append(cand)
            elif t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.user_attrs.get("measured"):
                self.outcomes[cand] = self._outcome_of(t)
        self.in_flight = [c for c in self.in_flight if c not in self.outcomes]
        self.busy -= set(self.outcomes)

    @staticmethod
    def _outcome_of(t: optuna.trial.FrozenTrial) -> Outcome:
        return Outcome(
            float(t.user_attrs.get("capacity_rps", 0.0)),
            _latency_attr(t.user_attrs),
            bool(t.user_attrs.get("failed", False)),
            str(t.user_attrs.get("error", "")),
            str(t.user_attrs.get("bottleneck", "")),
        )

    def unseen(self, cand: Candidate | JointCandidate) -> bool:
        """Neither measured nor being measured by another worker: a proposal may pick it."""
        return cand not in self.outcomes and cand not in self.busy

    def adopt(self, candidate: Candidate | JointCandidate, outcome: Outcome) -> None:
        """Record a config finished by an earlier run whose study lacks it (died between writing
        configs.csv and telling the study)."""
        if candidate in self.outcomes:
            return
        trial = self.study.ask(self.dists)
        self._tag(trial, candidate)
        self._finish(trial, candidate, outcome)
        if candidate in self.in_flight:
            self.in_flight.remove(candidate)

    @property
    def measured(self) -> int:
        """Configs measured so far (this run and earlier ones)."""
        return len(self.outcomes)

    def best_capacity(self) -> float:
        """Highest capacity measured so far (0 when none met the budget)."""
        return max((o.capacity_rps for o in self.outcomes.values() if o.feasible), default=0.0)

    def position(self, cand: Candidate | JointCandidate) -> tuple[int, ...]:
        """Where a candidate sits on the knob grid (each knob's value index)."""
        encoded = self.encoding.encode(cand)
        return tuple(encoded[key] for key in self.encoding.axes)

    def plausible(self) -> dict[Candidate | JointCandidate, float]:
        """Unmeasured candidates that could still beat the best capacity, with their optimistic
        bounds (see analyzer.search.bound)."""
        measured = {
            self.position(c): (o.capacity_rps if o.feasible else 0.0) for c, o in self.outcomes.items()
        }
        unmeasured = {self.position(c): c for c in self.candidates if c not in self.outcomes}
        return {
            unmeasured[p]: b
            for p, b in plausible(measured, list(unmeasured), floors=self.gain_floors()).items()
        }

    def gain_floors(self) -> tuple[float, ...]:
        """Per knob, a gain per step the bound always allows: an instance step can scale capacity
        by the ratio of the instance counts (1 to 2: x2), however little the measured steps added."""
        floors = []
        for key in self.encoding.axes:
            values = self.encoding.values[key]
            ratios = [
                b / a for a, b in itertools.pairwise(values) if key.endswith("instance_count") and a > 0
            ]
            floors.append(max(ratios, default=1.0))
        return tuple(floors)

    def remaining(self) -> int:
        """How many more configs this search may still measure (an upper bound)."""
        left = (
            len(self.plausible())
            if self.stop_when_implausible
            else len([c for c in self.candidates if c not in self.outcomes])
        )
        if self.max_trials is not None:
            left = min(self.max_trials - self.measured, left)
        return max(0, left)

    # -- ask / tell ----------------------------------------------------------------------------
    def _should_stop(self) -> str:
        if self.max_trials is not None and self.measured >= self.max_trials:
            return f"reached max_trials ({self.max_trials})"
        if all(c in self.outcomes for c in self.candidates):
            return "measured every valid config"
        if (
            self.stop_when_implausible
            and self.measured >= self.min_trials()
            and self._best_is_local_optimum()
            and not self.plausible()
        ):
            left = len([c for c in self.candidates if c not in self.outcomes])
            return (
                f"the {left} unmeasured configs cannot plausibly beat the best "
                f"({self.best_capacity():.1f} req/s): every neighbour of the best was measured, and "
                "the rest are out of reach by the largest gain per knob step seen"
            )
        if self.time_budget_s is not None and time.monotonic() - self.started >= self.time_budget_s:
            return f"reached the time budget ({self.time_budget_s:g} s)"
        if self.patience and self.objective == "throughput" and self._since_improvement() >= self.patience:
            return f"no improvement in the last {self.patience} configs"
        return ""

    def neighbours(
        self, cand: Candidate | JointCandidate, order: Sequence[str] | None = None
    ) -> list[Candidate | JointCandidate]:
        """Valid candidates one step away along one knob (knobs in `order`, up before down)."""
        here = self.encoding.encode(cand)
        out = []
        for key in order if order is not None else self.encoding.axes:
            for step in (1, -1):
                params = dict(here)
                params[key] += step
                if 0 <= params[key] < len(self.encoding.values[key]):
                    other = self.encoding.decode(params)
                    if other in self.valid:
                        out.append(other)
        return out

    def best_candidate(self) -> Candidate | JointCandidate | None:
        """The measured config with the highest capacity (None while none met the budget)."""
        feasible = [(o.capacity_rps, c) for c, o in self.outcomes.items() if o.feasible]
        return max(feasible, key=lambda x: (x[0], x[1].config_id))[1] if feasible else None

    def _best_is_local_optimum(self) -> bool:
        """Every neighbour of the best config has been measured (none of them beat it)."""
        best = self.best_candidate()
        return best is not None and all(n in self.outcomes for n in self.neighbours(best))

    def min_trials(self) -> int:
        """Configs to measure before the plausibility bound may stop the search."""
        return 1

    def _since_improvement(self) -> int:
        trials = [t for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get("measured")]
        trials.sort(key=lambda t: t.number)
        best, since = 0.0, 0
        for t in trials:
            cap = float(t.user_attrs.get("capacity_rps", 0.0))
            if cap > best * 1.01:
                best, since = cap, 0
            else:
                since += 1
        return since

    def ask(self, keep_waiting: Any = None) -> Candidate | JointCandidate | None:
        """The next config to measure, or None when the search is over (see stop_reason).
        Shared: a config is claimed before it is returned; while others still measure the last
        configs, this waits (`keep_waiting()` False: give up) so that a dead worker's config,
        failed by its heartbeat and retried, is picked up here."""
        assert self._current is None, "tell() the previous candidate first"
        if self.shared is not None:
            return self._ask_shared(keep_waiting or (lambda: True))
        reason = self._should_stop()
        if reason:
            self.stop_reason = reason
            return None
        proposal = (self.in_flight.pop(0), None) if self.in_flight else self._propose()
        if proposal is None:
            self.stop_reason = self.stop_reason or "the strategy has nothing left to propose"
            return None
        cand, trial = proposal
        if trial is None:
            # Pin the trial to our candidate: enqueued params are what the next ask() returns.
            self.study.enqueue_trial(self.encoding.encode(cand), skip_if_exists=False)
            trial = self.study.ask(self.dists)
        self._tag(trial, cand)
        self._trial, self._current = trial, cand
        return cand

    def _refresh_shared(self) -> None:
        """Shared: fail the trials of dead workers (their configs go back to the queue), then
        read every worker's results and which configs are being measured.

        Not within a grace period of a database outage that this worker saw: nobody could write
        a heartbeat while it was down, so a stale one then is no sign that its worker died. The
        grace period after it gives every live worker time to beat again."""
        if self.shared.retry.quiet_for(self.shared.timings.grace_s):
            fail_stale_trials(self.study)
        self._load_history()

    def _start_heartbeat(self, trial: optuna.trial.Trial) -> None:
        """Shared: keep the trial alive in the study while this worker has it (a daemon thread:
        it never keeps the process alive, and it outlives a failed write)."""
        storage = self.study._storage
        if not isinstance(storage, BaseHeartbeat):  # as Optuna's own heartbeat code tells
            return
        interval = storage.get_heartbeat_interval()
        if interval is None:
            return
        trial_id = trial._trial_id
        self._heartbeat = Heartbeat(
            lambda: storage.record_heartbeat(trial_id),
            interval,
            retry=self.shared.retry,
            name=f"heartbeat-trial-{trial.number}",
        ).start()

    def _ask_shared(self, keep_waiting: Any) -> Candidate | JointCandidate | None:
        while True:
            self._refresh_shared()
            reason = self._should_stop()
            if reason:
                self.stop_reason = reason
                return None
            waiting = any(t.state == TrialState.WAITING for t in self.study.get_trials(deepcopy=False))
            proposal = None if waiting else self._propose()
            if proposal is None and not waiting:
                if not self.busy:
                    self.stop_reason = self.stop_reason or "the strategy has nothing left to propose"
                    return None
                if not keep_waiting():
                    self.stop_reason = "stopped while other workers measure the last configs"
                    return None
                time.sleep(SHARED_POLL_S)
                continue
            if proposal is not None and proposal[1] is not None:
                trial = proposal[1]
            else:
                if proposal is not None:
                    self.study.enqueue_trial(self.encoding.encode(proposal[0]), skip_if_exists=False)
                trial = self.study.ask(self.dists)  # pops the oldest waiting trial (atomically)
            # The heartbeat first: a worker that dies from here on leaves a trial that goes stale
            # (a trial that never beat is never failed by Optuna, and its claim would be stuck).
            self._trial = trial
            self._start_heartbeat(trial)
            try:
                cand = self.encoding.decode(trial.params)
                taken = cand not in self.valid or cand in self.outcomes
                if taken or not claim_config(self.shared, self.study, cand.config_id, trial.number):
                    self._stop_heartbeat()
                    self._trial = None
                    trial.set_user_attr("claimed_elsewhere", True)
                    self.study.tell(trial, state=TrialState.FAIL)
                    continue
                self._current = cand
                self._tag(trial, cand)
            except BaseException as exc:
                self.leave(exc)
                raise
            return cand

    def others_busy(self) -> bool:
        """Shared: whether another worker measures a config now (dead workers' trials failed first)."""
        self._refresh_shared()
        return bool(self.busy)

    @property
    def heartbeat(self) -> Heartbeat | None:
        """Shared: the heartbeat of the trial being measured (None between trials, or alone)."""
        return self._heartbeat

    @property
    def trial_number(self) -> int | None:
        """The number of the trial being measured (None between trials)."""
        return None if self._trial is None else self._trial.number

    def _stop_heartbeat(self) -> None:
        beat, self._heartbeat = self._heartbeat, None
        if beat is not None:
            beat.stop()

    def _tag(self, trial: optuna.trial.Trial, cand: Candidate | JointCandidate) -> None:
        # Two writes, and another worker may read the trial between them: params first, so that
        # a trial with a config_id always has its params (_load_history reads both).
        trial.set_user_attr("params", cand.params())
        trial.set_user_attr("config_id", cand.config_id)

    def tell(self, candidate: Candidate | JointCandidate, outcome: Outcome) -> None:
        """Report the outcome of the candidate last asked for. Shared: only while this worker
        still holds the config (ClaimLostError otherwise: another worker took it over, and this
        one must drop it, see drop_lost)."""
        assert candidate == self._current and self._trial is not None
        if self.shared is not None:
            self._check_claim()
        try:
            self._finish(self._trial, candidate, outcome)
        except (UpdateFinishedTrialError, ValueError):
            # Failed by another worker between the check and the tell (its heartbeat was stale):
            # Optuna refuses to update a finished trial (UpdateFinishedTrialError from an
            # attribute, ValueError from the tell itself).
            if self.shared is None or self._trial_state() == TrialState.RUNNING:
                raise
            raise ClaimLostError(
                f"config {candidate.config_id}'s trial was failed by another worker while this one "
                "measured it: its heartbeat was stale for longer than the grace period"
            ) from None
        self._stop_heartbeat()
        self._trial, self._current = None, None
        self.measured_this_run += 1

    def _check_claim(self) -> None:
        """Shared: ClaimLostError unless this worker's trial still runs and still holds its
        config's claim (a worker whose heartbeat went stale has lost both)."""
        assert self._trial is not None and self._current is not None
        config_id, number = self._current.config_id, self._trial.number
        held = self.shared.holder(config_id)
        if held != (number, self.shared.worker) or self._trial_state() != TrialState.RUNNING:
            by = (
                f"by {held[1]}" if held is not None and held[1] != self.shared.worker else "by another worker"
            )
            raise ClaimLostError(
                f"config {config_id} was taken over {by} while this worker measured it: its "
                "heartbeat was stale for longer than the grace period"
            )

    def _trial_state(self) -> TrialState:
        """The current trial's state as the study holds it now (another worker may fail it)."""
        assert self._trial is not None
        return self.study._storage.get_trial(self._trial._trial_id).state

    def drop_lost(self) -> None:
        """Shared: forget the current config after its claim was lost (ClaimLostError). The
        worker that took it over measures it and drops this worker's rows of it; there is
        nothing to tell or release here."""
        self._stop_heartbeat()
        self._trial, self._current = None, None

    def leave(self, exc: BaseException) -> str:
        """Give the current config back (abandon) as an error ends the search; '' when done, or
        why it could not be. With the database gone (DatabaseError) there is nothing to give it
        back to: its heartbeat stops, and the other workers take it over once it is stale."""
        if isinstance(exc, DatabaseError):
            self.drop_lost()
            return "the database is unreachable"
        try:
            self.abandon()
        except Exception as cleanup:  # noqa: BLE001 - the error that ends the search is reported
            self.drop_lost()
            return type(cleanup).__name__
        return ""

    def abandon(self) -> None:
        """The current candidate was not finished (the run is stopping, or failed): leave it to
        a resume, or in a shared study to another worker at once: its rows dropped, its claim
        released, its trial failed and its config queued again."""
        self._stop_heartbeat()
        trial, cand = self._trial, self._current
        self._trial, self._current = None, None
        if trial is None:
            return
        if self.shared is not None and cand is not None:
            # Rows first: once the claim is free another worker may claim the config and
            # start writing rows of its own for it.
            self.shared.drop_trial_rows(cand.config_id, trial.number)
            self.shared.release(cand.config_id, trial.number)
        trial.set_user_attr("abandoned", True)  # a resumed run measures it first
        self.study.tell(trial, state=TrialState.FAIL)
        if cand is None:
            return
        if self.shared is not None:
            # Back to the queue for another worker (or a resume).
            self.study.enqueue_trial(self.encoding.encode(cand), user_attrs=dict(trial.user_attrs))
        else:
            self.in_flight.insert(0, cand)

    def _finish(self, trial: optuna.trial.Trial, cand: Candidate | JointCandidate, outcome: Outcome) -> None:
        trial.set_user_attr("measured", True)
        trial.set_user_attr("capacity_rps", outcome.capacity_rps)
        trial.set_user_attr("latency_ms", outcome.latency_ms if math.isfinite(outcome.latency_ms) else None)
        trial.set_user_attr("failed", outcome.failed)
        trial.set_user_attr("error", outcome.error[:500])
        trial.set_user_attr("bottleneck", outcome.bottleneck)
        set_budget_constraint(
            trial,
            -1.0
            if outcome.feasible
            else (outcome.latency_ms - self.budget_ms if math.isfinite(outcome.latency_ms) else 1e9),
        )
        if outcome.failed:
            self.study.tell(trial, state=TrialState.FAIL)
        elif len(self.directions) == 1:
            self.study.tell(trial, outcome.capacity_rps)
        else:
            latency = outcome.latency_ms if math.isfinite(outcome.latency_ms) else 1e9
            self.study.tell(trial, [outcome.capacity_rps, latency])
        self.outcomes[cand] = outcome
