"""How a search asks for its next config, apart from which config it proposes: the `Asking`
protocol, what it reads of the search (`AskingSearch`), and a local run's asking (`LocalAsk`).

A local run's study has one worker: a trial still running when the run died (or one a stopped
run abandoned) is measured first on resume, and nothing is claimed. A shared study's asking
(claims, heartbeats, other workers' configs) is analyzer.search.claims.SharedAsk. The search
(analyzer.search.base.Search) is given one of them and calls it at each step of ask/tell, so it
holds no branch on which kind of study it runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from analyzer.search.heartbeat import Heartbeat
from analyzer.search.study import Encoding

NOTHING_LEFT = "the strategy has nothing left to propose"  # a stop reason (summary.json)

Proposal = tuple[Any, "optuna.trial.Trial | None"]  # a candidate, with the trial that proposed it


class AskingSearch(Protocol):
    """What an `Asking` reads and does of its search (analyzer.search.base.Search)."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage  # the study's storage, as the search opened it
    encoding: Encoding
    valid: set[Any]
    outcomes: dict[Any, Any]
    busy: set[Any]  # configs other workers measure now
    in_flight: list[Any]  # configs to measure first (running when a previous run died)
    stop_reason: str

    @property
    def trial_number(self) -> int | None:
        """The number of the trial being measured (None between trials)."""
        ...

    def reload(self) -> None:
        """Read the study's trials again (outcomes, configs in flight or busy)."""
        ...

    def stop_check(self) -> str:
        """The first stopping rule's reason, or ''."""
        ...

    def proposal(self) -> Proposal | None:
        """The strategy's next candidate (None: nothing left)."""
        ...

    def pin(self, cand: Any) -> optuna.trial.Trial:
        """A new trial of the study for exactly this candidate."""
        ...

    def hold(self, trial: optuna.trial.Trial | None, cand: Any) -> None:
        """Make this the trial (and candidate) being measured; None, None: none."""
        ...

    def tag(self, trial: optuna.trial.Trial, cand: Any) -> None:
        """Mark the trial with its candidate's config."""
        ...

    def leave(self, exc: BaseException) -> str:
        """Give the current config back as an error ends the search."""
        ...


class Asking(Protocol):
    """A study's way of handing out configs to measure: local, or shared among workers."""

    @property
    def heartbeat(self) -> Heartbeat | None:
        """The heartbeat of the trial being measured (None: none, or no heartbeats)."""
        ...

    def unfinished(self, search: AskingSearch, trial: optuna.trial.FrozenTrial, cand: Any) -> bool:
        """History: take care of a trial that is not a finished measurement; True when it
        was one to take (the search then reads nothing more of it)."""
        ...

    def ask(self, search: AskingSearch, keep_waiting: Callable[[], bool]) -> Any | None:
        """The next config to measure, held by the search; None when the search is over."""
        ...

    def check_held(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any) -> None:
        """Before a tell: raise ClaimLostError when the config is no longer this worker's."""
        ...

    def refused(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any) -> None:
        """The study refused the tell (the trial was finished meanwhile): raise what that means
        here, or return to let Optuna's error go on."""
        ...

    def let_go(self) -> None:
        """The current trial is done with here (told, dropped or abandoned)."""
        ...

    def abandon(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any | None) -> None:
        """Give an unfinished trial (and its config) back for a resume or another worker."""
        ...

    def others_busy(self, search: AskingSearch) -> bool:
        """Whether another worker measures a config now."""
        ...


class LocalAsk:
    """A local run's asking: one worker, no claims, no heartbeats."""

    @property
    def heartbeat(self) -> Heartbeat | None:
        """A local study's trials have no heartbeat."""
        return None

    def unfinished(self, search: AskingSearch, trial: optuna.trial.FrozenTrial, cand: Any) -> bool:
        """A trial being measured when the run died (or stopped): measured again, first."""
        if trial.state == TrialState.RUNNING or (
            trial.state == TrialState.FAIL and trial.user_attrs.get("abandoned")
        ):
            if trial.state == TrialState.RUNNING:
                search.study.tell(trial.number, state=TrialState.FAIL)
            if cand in search.valid and cand not in search.in_flight:
                search.in_flight.append(cand)
            return True
        return False

    def ask(self, search: AskingSearch, keep_waiting: Callable[[], bool]) -> Any | None:
        """The config in flight first, else the strategy's proposal; None once a stopping rule
        says so or nothing is left (keep_waiting is not needed: nobody else measures)."""
        reason = search.stop_check()
        if reason:
            search.stop_reason = reason
            return None
        proposal = (search.in_flight.pop(0), None) if search.in_flight else search.proposal()
        if proposal is None:
            search.stop_reason = search.stop_reason or NOTHING_LEFT
            return None
        cand, trial = proposal
        if trial is None:
            trial = search.pin(cand)
        search.tag(trial, cand)
        search.hold(trial, cand)
        return cand

    def check_held(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any) -> None:
        """A local config is always this worker's."""

    def refused(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any) -> None:
        """Nobody else finishes a local trial: Optuna's error is a bug, and goes on."""

    def let_go(self) -> None:
        """Nothing to stop: no heartbeat."""

    def abandon(self, search: AskingSearch, trial: optuna.trial.Trial, cand: Any | None) -> None:
        """Fail the trial, marked abandoned so that a resumed run measures its config first
        (and this search too, if asked again)."""
        trial.set_user_attr("abandoned", True)
        search.study.tell(trial, state=TrialState.FAIL)
        if cand is not None:
            search.in_flight.insert(0, cand)

    def others_busy(self, search: AskingSearch) -> bool:
        """No other worker."""
        return False
