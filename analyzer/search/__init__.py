"""Search strategies behind one ask/tell interface: `grid` (every valid point) and `optuna`
(TPE with the budget as a constraint). Both keep their trials in the run's Optuna study, so a
stopped sweep resumes where it was."""

from analyzer.search.base import Outcome, Search, open_study
from analyzer.search.grid import GridSearch
from analyzer.search.tpe import OptunaSearch

__all__ = ["Outcome", "Search", "open_study", "GridSearch", "OptunaSearch", "make_search"]


def make_search(strategy: str, **kwargs: object) -> Search:
    """The search for a strategy name ("grid" or "optuna")."""
    if strategy == "grid":
        return GridSearch(**kwargs)  # type: ignore[arg-type]
    if strategy == "optuna":
        return OptunaSearch(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown strategy {strategy!r}")
