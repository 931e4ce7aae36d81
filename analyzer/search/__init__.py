"""Search strategies behind one ask/tell interface, registered by name in
`analyzer.search.registry` (`grid`: every valid point; `optuna`: TPE with the budget as a
constraint). Every strategy keeps its trials in the run's Optuna study, so a stopped sweep
resumes where it was. This package imports nothing heavy: the strategies load on first use."""

from analyzer.search.registry import CLASSES, make_search, strategy_class

__all__ = ["CLASSES", "make_search", "strategy_class"]
