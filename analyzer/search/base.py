"""What every search shares: the bookkeeping of measured, failed and in-flight configs over the
run's Optuna study (analyzer.search.study), its stopping rules (analyzer.search.stopping), and
the asking it is given: a local run's (analyzer.search.asking) or a shared study's claims and
heartbeats (analyzer.search.claims)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from analyzer.config.pipeline import AnyCandidate
from analyzer.errors import DatabaseError
from analyzer.search.asking import Asking, LocalAsk
from analyzer.search.bound import plausible
from analyzer.search.heartbeat import Heartbeat
from analyzer.search.stopping import Implausible, MaxTrials, Patience, SpaceMeasured, StopRule, rules
from analyzer.search.study import STUDY_NAME, Encoding, Outcome, open_study, set_budget_constraint


def _latency_attr(attrs: dict[str, Any]) -> float:
    """A trial's budget-percentile latency. Studies written before the attribute was named for the
    budget's percentile kept it as `p99_ms` (their sweeps judged p99 or stored it there)."""
    value = attrs.get("latency_ms", attrs.get("p99_ms"))
    return math.nan if value is None else float(value)


class Search:
    """Ask/tell over candidates, recorded in an Optuna study.

    Subclasses choose the next candidate (`_propose`) and their stopping rules (`stop_rules`);
    this class keeps the study in step: each measured config is one trial with its config_id,
    capacity and p99 as user attributes. Configs already measured (a resumed run, or a repeated
    proposal) are never measured twice. How configs are handed out is the `Asking` it is given:
    `claims` for a shared study (analyzer.search.claims.SharedAsk), None for a local run.

    The contract every registered strategy keeps (tests/unit/test_search_conformance.py): ask()
    returns only candidates of the space, never one twice, and None once the space is measured
    or max_trials reached; a search on a study with finished configs goes on from them; a config
    abandoned by a stopped run is asked first when the run resumes; with `starts_at_base`, the
    first config asked is `base` (the model's current config).
    """

    strategy = "base"  # the name it is registered under (analyzer.search.registry)
    starts_at_base = False  # the first config asked is `base` when it is in the space

    def __init__(
        self,
        *,
        candidates: Sequence[AnyCandidate],
        storage: str | optuna.storages.BaseStorage,
        budget_ms: float,
        objective: str = "throughput",
        stop_rules: Sequence[StopRule] | None = None,
        seed: int = 0,
        base: AnyCandidate | None = None,
        study_name: str = STUDY_NAME,
        claims: Asking | None = None,
    ) -> None:
        if not candidates:
            raise ValueError("no candidates to search")
        self.candidates = list(candidates)
        self.valid = set(self.candidates)
        self.budget_ms = budget_ms
        self.objective = objective
        # Without rules given (a search built directly): the strategy's own, with no limits.
        self.rules = (
            list(stop_rules) if stop_rules is not None else self.stop_rules(self.candidates, objective)
        )
        self.seed = seed
        self.base = base
        self.started = time.monotonic()
        self.encoding = Encoding(self.candidates)
        self.dists = self.encoding.distributions
        self.directions: list[Literal["minimize", "maximize"]] = (
            ["maximize"] if objective == "throughput" else ["maximize", "minimize"]
        )
        self.asking: Asking = claims if claims is not None else LocalAsk()
        # `busy` holds the configs other workers measure now (a shared study's).
        self.busy: set[AnyCandidate] = set()
        # The storage held here (what Optuna would make of a URL): the asking reads trials by number.
        self.storage = optuna.storages.get_storage(storage)
        self.study = open_study(self.storage, self.directions, self._sampler(), study_name)
        self.outcomes: dict[AnyCandidate, Outcome] = {}
        self.in_flight: list[AnyCandidate] = []  # running when a previous run died: measure first
        self._trial: optuna.trial.Trial | None = None
        self._current: AnyCandidate | None = None
        self.measured_this_run = 0
        self.stop_reason = ""
        self._load_history()

    @classmethod
    def stop_rules(
        cls,
        candidates: Sequence[Any],
        objective: str = "throughput",
        *,
        max_trials: int | None = None,
        time_budget_s: float | None = None,
        patience: int | None = None,
    ) -> list[StopRule]:
        """The strategy's stopping rules for the spec's limits: stop once every config is measured."""
        return rules(
            objective,
            max_trials=max_trials,
            time_budget_s=time_budget_s,
            patience=patience,
            space=[SpaceMeasured()],
        )

    def _rule(self, kind: type[Any]) -> Any:
        """The search's rule of this class, or None."""
        return next((r for r in self.rules if isinstance(r, kind)), None)

    @property
    def max_trials(self) -> int | None:
        """The trial budget (the MaxTrials rule's), or None."""
        rule = self._rule(MaxTrials)
        return None if rule is None else int(rule.limit)

    @property
    def patience(self) -> int | None:
        """Configs without improvement before the search stops (the Patience rule's), or None."""
        rule = self._rule(Patience)
        return None if rule is None else int(rule.trials)

    @property
    def bounded(self) -> bool:
        """Whether the search stops once no unmeasured config can plausibly beat the best."""
        return self._rule(Implausible) is not None

    # -- to override ----------------------------------------------------------------------------
    def _sampler(self) -> optuna.samplers.BaseSampler | None:
        return None

    def start_hint(self, cand: AnyCandidate) -> float | None:
        """The load level to start this config's level search at, when the strategy can
        predict it (None: the loop's own rule, analyzer.sweep.policy.start_level)."""
        return None

    def notes(self) -> list[str]:
        """What the strategy has to tell the user since it was last asked (then forgotten)."""
        return []

    def prediction(self, cand: AnyCandidate) -> tuple[float, float, float, float] | None:
        """(capacity, low, high, level) a strategy that models the server predicts for an
        unmeasured config; None for the others."""
        return None

    def model_summary(self) -> dict[str, Any] | None:
        """What summary.json records of the strategy's model of the server (None: no model)."""
        return None

    def _propose(self) -> tuple[AnyCandidate, optuna.trial.Trial | None] | None:
        """The next candidate, with the study trial that proposed it if the sampler made one."""
        raise NotImplementedError

    def proposal(self) -> tuple[AnyCandidate, optuna.trial.Trial | None] | None:
        """The strategy's next candidate (see _propose), for the asking."""
        return self._propose()

    # -- history --------------------------------------------------------------------------------
    def _load_history(self) -> None:
        self.busy = set()
        for t in self.study.get_trials(deepcopy=False):
            if "config_id" not in t.user_attrs or "params" not in t.user_attrs:
                continue  # not tagged yet (its config is claimed, so nobody else measures it)
            cand = self.encoding.factory(t.user_attrs["params"])
            if self.asking.unfinished(self, t, cand):
                continue
            if t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.user_attrs.get("measured"):
                self.outcomes[cand] = self._outcome_of(t)
        self.in_flight = [c for c in self.in_flight if c not in self.outcomes]
        self.busy -= set(self.outcomes)

    def reload(self) -> None:
        """Read the study's trials again (for the asking: other workers' results and configs)."""
        self._load_history()

    @staticmethod
    def _outcome_of(t: optuna.trial.FrozenTrial) -> Outcome:
        return Outcome(
            float(t.user_attrs.get("capacity_rps", 0.0)),
            _latency_attr(t.user_attrs),
            bool(t.user_attrs.get("failed", False)),
            str(t.user_attrs.get("error", "")),
            str(t.user_attrs.get("bottleneck", "")),
        )

    def unseen(self, cand: AnyCandidate) -> bool:
        """Neither measured nor being measured by another worker: a proposal may pick it."""
        return cand not in self.outcomes and cand not in self.busy

    def adopt(self, candidate: AnyCandidate, outcome: Outcome) -> None:
        """Record a config finished by an earlier run whose study lacks it (died between writing
        configs.csv and telling the study)."""
        if candidate in self.outcomes:
            return
        trial = self.study.ask(self.dists)
        self.tag(trial, candidate)
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

    def position(self, cand: AnyCandidate) -> tuple[int, ...]:
        """Where a candidate sits on the knob grid (each knob's value index)."""
        encoded = self.encoding.encode(cand)
        return tuple(encoded[key] for key in self.encoding.axes)

    def plausible(self) -> dict[AnyCandidate, float]:
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
            steps = itertools.pairwise(values)
            ratios = [b / a for a, b in steps if key.endswith("instance_count") and a > 0]
            floors.append(max(ratios, default=1.0))
        return tuple(floors)

    def unmeasured_count(self) -> int:
        """Valid configs not measured yet."""
        return len([c for c in self.candidates if c not in self.outcomes])

    def elapsed_s(self) -> float:
        """Seconds since this search started."""
        return time.monotonic() - self.started

    def remaining(self) -> int:
        """How many more configs this search may still measure (an upper bound): the tightest
        of its stopping rules' bounds."""
        bounds = [n for n in (rule.left(self) for rule in self.rules) if n is not None]
        return max(0, min(bounds, default=self.unmeasured_count()))

    def stop_check(self) -> str:
        """The reason of the first stopping rule that says stop, or '' to go on."""
        for rule in self.rules:
            reason = rule.check(self)
            if reason:
                return reason
        return ""

    def neighbours(self, cand: AnyCandidate, order: Sequence[str] | None = None) -> list[AnyCandidate]:
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

    def best_candidate(self) -> AnyCandidate | None:
        """The measured config with the highest capacity (None while none met the budget)."""
        feasible = [(o.capacity_rps, c) for c, o in self.outcomes.items() if o.feasible]
        return max(feasible, key=lambda x: (x[0], x[1].config_id))[1] if feasible else None

    def best_is_local_optimum(self) -> bool:
        """Every neighbour of the best config has been measured (none of them beat it)."""
        best = self.best_candidate()
        return best is not None and all(n in self.outcomes for n in self.neighbours(best))

    def min_trials(self) -> int:
        """Configs to measure before the plausibility bound may stop the search."""
        return 1

    def since_improvement(self) -> int:
        """Measured configs since the best capacity last rose by more than 1 %, in trial order."""
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

    # -- ask / tell ----------------------------------------------------------------------------
    def ask(self, keep_waiting: Callable[[], bool] | None = None) -> AnyCandidate | None:
        """The next config to measure, or None when the search is over (see stop_reason).
        Shared: a config is claimed before it is returned; while others still measure the last
        configs, this waits (`keep_waiting()` False: give up) so that a dead worker's config,
        failed by its heartbeat and retried, is picked up here."""
        assert self._current is None, "tell() the previous candidate first"
        cand: AnyCandidate | None = self.asking.ask(self, keep_waiting or (lambda: True))
        return cand

    def pin(self, cand: AnyCandidate) -> optuna.trial.Trial:
        """A new trial for exactly this candidate: enqueued params are what the next ask() returns."""
        self.study.enqueue_trial(self.encoding.encode(cand), skip_if_exists=False)
        return self.study.ask(self.dists)

    def hold(self, trial: optuna.trial.Trial | None, cand: AnyCandidate | None) -> None:
        """Make this the trial (and candidate) being measured; None, None: none."""
        self._trial, self._current = trial, cand

    def others_busy(self) -> bool:
        """Shared: whether another worker measures a config now (dead workers' trials failed first)."""
        return self.asking.others_busy(self)

    @property
    def heartbeat(self) -> Heartbeat | None:
        """Shared: the heartbeat of the trial being measured (None between trials, or alone)."""
        return self.asking.heartbeat

    @property
    def trial_number(self) -> int | None:
        """The number of the trial being measured (None between trials)."""
        return None if self._trial is None else self._trial.number

    def tag(self, trial: optuna.trial.Trial, cand: AnyCandidate) -> None:
        """Mark the trial with its candidate's config."""
        # Two writes, and another worker may read the trial between them: params first, so that
        # a trial with a config_id always has its params (_load_history reads both).
        trial.set_user_attr("params", cand.params())
        trial.set_user_attr("config_id", cand.config_id)

    def tell(self, candidate: AnyCandidate, outcome: Outcome) -> None:
        """Report the outcome of the candidate last asked for. Shared: only while this worker
        still holds the config (ClaimLostError otherwise: another worker took it over, and this
        one must drop it, see drop_lost)."""
        assert candidate == self._current and self._trial is not None
        self.asking.check_held(self, self._trial, candidate)
        try:
            self._finish(self._trial, candidate, outcome)
        except (UpdateFinishedTrialError, ValueError):
            # Finished by someone else between the check and the tell: Optuna refuses to update
            # a finished trial (UpdateFinishedTrialError from an attribute, ValueError from the
            # tell itself). The asking says what that means (shared: ClaimLostError).
            self.asking.refused(self, self._trial, candidate)
            raise
        self.asking.let_go()
        self._trial, self._current = None, None
        self.measured_this_run += 1

    def drop_lost(self) -> None:
        """Shared: forget the current config after its claim was lost (ClaimLostError). The
        worker that took it over measures it and drops this worker's rows of it; there is
        nothing to tell or release here."""
        self.asking.let_go()
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
        a resume, or in a shared study to another worker at once (see the asking's abandon)."""
        self.asking.let_go()
        trial, cand = self._trial, self._current
        self._trial, self._current = None, None
        if trial is not None:
            self.asking.abandon(self, trial, cand)

    def _finish(self, trial: optuna.trial.Trial, cand: AnyCandidate, outcome: Outcome) -> None:
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
