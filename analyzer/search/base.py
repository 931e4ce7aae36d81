"""What every search shares: the bookkeeping of measured, failed and in-flight configs over the
run's Optuna study (analyzer.search.study), the stopping rules, and a shared study's asking
(its claims are analyzer.search.claims)."""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from analyzer.search.bound import plausible
from analyzer.search.claims import claim_config
from analyzer.search.study import STUDY_NAME, Encoding, Outcome, open_study, set_budget_constraint
from analyzer.space import Candidate

SHARED_POLL_S = 2.0  # a shared study's idle worker looks for work this often
HEARTBEAT_S = 5  # shared studies: a running trial's heartbeat, and how stale one may grow
GRACE_S = 20


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
        candidates: Sequence[Candidate],
        storage_url: str,
        budget_ms: float,
        objective: str = "throughput",
        max_trials: int | None = None,
        time_budget_s: float | None = None,
        patience: int | None = None,
        seed: int = 0,
        base: Candidate | None = None,
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
        self.directions = ["maximize"] if objective == "throughput" else ["maximize", "minimize"]
        # Shared (analyzer.shared.SharedTables): other workers measure the same study at once;
        # each config is claimed by one trial, and `busy` holds the configs others measure now.
        self.shared = shared
        self.busy: set[Candidate] = set()
        self.study = open_study(storage_url, self.directions, self._sampler(), study_name)
        self.outcomes: dict[Candidate, Outcome] = {}
        self.in_flight: list[Candidate] = []  # running when a previous run died: measure first
        self._trial: optuna.trial.Trial | None = None
        self._current: Candidate | None = None
        self.measured_this_run = 0
        self.stop_reason = ""
        self._load_history()

    # -- to override ----------------------------------------------------------------------------
    def _sampler(self) -> optuna.samplers.BaseSampler | None:
        return None

    def _propose(self) -> tuple[Candidate, optuna.trial.Trial | None] | None:
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
            float(t.user_attrs.get("p99_ms") if t.user_attrs.get("p99_ms") is not None else math.nan),
            bool(t.user_attrs.get("failed", False)),
            str(t.user_attrs.get("error", "")),
            str(t.user_attrs.get("bottleneck", "")),
        )

    def unseen(self, cand: Candidate) -> bool:
        """Neither measured nor being measured by another worker: a proposal may pick it."""
        return cand not in self.outcomes and cand not in self.busy

    def adopt(self, candidate: Candidate, outcome: Outcome) -> None:
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

    def position(self, cand: Candidate) -> tuple[int, ...]:
        """Where a candidate sits on the knob grid (each knob's value index)."""
        encoded = self.encoding.encode(cand)
        return tuple(encoded[key] for key in self.encoding.axes)

    def plausible(self) -> dict[Candidate, float]:
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
            ratios = [b / a for a, b in zip(values, values[1:]) if key.endswith("instance_count") and a > 0]
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

    def neighbours(self, cand: Candidate, order: Sequence[str] | None = None) -> list[Candidate]:
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

    def best_candidate(self) -> Candidate | None:
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

    def ask(self, keep_waiting: Any = None) -> Candidate | None:
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
        read every worker's results and which configs are being measured."""
        from optuna.storages import fail_stale_trials

        fail_stale_trials(self.study)
        self._load_history()

    def _ask_shared(self, keep_waiting: Any) -> Candidate | None:
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
            cand = self.encoding.decode(trial.params)
            taken = cand not in self.valid or cand in self.outcomes
            if taken or not claim_config(self.shared, self.study, cand.config_id, trial.number):
                trial.set_user_attr("claimed_elsewhere", True)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            self._tag(trial, cand)
            self._trial, self._current = trial, cand
            self._heartbeat = get_heartbeat_thread(trial._trial_id, self.study._storage)
            self._heartbeat.start()
            return cand

    def others_busy(self) -> bool:
        """Shared: whether another worker measures a config now (dead workers' trials failed first)."""
        self._refresh_shared()
        return bool(self.busy)

    @property
    def trial_number(self) -> int | None:
        """The number of the trial being measured (None between trials)."""
        return None if self._trial is None else self._trial.number

    def _stop_heartbeat(self) -> None:
        beat, self._heartbeat = getattr(self, "_heartbeat", None), None
        if beat is not None:
            beat.join()

    def _tag(self, trial: optuna.trial.Trial, cand: Candidate) -> None:
        # Two writes, and another worker may read the trial between them: params first, so that
        # a trial with a config_id always has its params (_load_history reads both).
        trial.set_user_attr("params", cand.params())
        trial.set_user_attr("config_id", cand.config_id)

    def tell(self, candidate: Candidate, outcome: Outcome) -> None:
        """Report the outcome of the candidate last asked for."""
        assert candidate == self._current and self._trial is not None
        self._finish(self._trial, candidate, outcome)
        self._stop_heartbeat()
        self._trial, self._current = None, None
        self.measured_this_run += 1

    def abandon(self) -> None:
        """The current candidate was not finished (the run is stopping): leave it to a resume."""
        self._stop_heartbeat()
        if self._trial is not None:
            self._trial.set_user_attr("abandoned", True)  # a resumed run measures it first
            self.study.tell(self._trial, state=TrialState.FAIL)
            assert self._current is not None
            if self.shared is not None:
                # Back to the queue for another worker (or a resume).
                self.study.enqueue_trial(
                    self.encoding.encode(self._current), user_attrs=dict(self._trial.user_attrs)
                )
            else:
                self.in_flight.insert(0, self._current)
        self._trial, self._current = None, None

    def _finish(self, trial: optuna.trial.Trial, cand: Candidate, outcome: Outcome) -> None:
        trial.set_user_attr("measured", True)
        trial.set_user_attr("capacity_rps", outcome.capacity_rps)
        trial.set_user_attr("p99_ms", outcome.p99_ms if math.isfinite(outcome.p99_ms) else None)
        trial.set_user_attr("failed", outcome.failed)
        trial.set_user_attr("error", outcome.error[:500])
        trial.set_user_attr("bottleneck", outcome.bottleneck)
        set_budget_constraint(
            trial,
            -1.0
            if outcome.feasible
            else (outcome.p99_ms - self.budget_ms if math.isfinite(outcome.p99_ms) else 1e9),
        )
        self.outcomes[cand] = outcome
        if outcome.failed:
            self.study.tell(trial, state=TrialState.FAIL)
        elif len(self.directions) == 1:
            self.study.tell(trial, outcome.capacity_rps)
        else:
            p99 = outcome.p99_ms if math.isfinite(outcome.p99_ms) else 1e9
            self.study.tell(trial, [outcome.capacity_rps, p99])
