"""The search strategies by name: the one mapping behind `make_search`.

The names are the spec's (`analyzer.spec.spec.STRATEGIES`, which the spec checks and `tritune sweep
--strategy` offers); this module maps each to its class. A strategy is a `Search` subclass in its
own module under analyzer/search/; adding one is that file, its name in the spec and one line in
CLASSES. Classes are named as "module:Class" and imported on first use, so that reading a spec
does not load Optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from analyzer.spec.spec import STRATEGIES

if TYPE_CHECKING:
    from analyzer.search.base import Search

CLASSES: dict[str, str] = {
    "grid": "analyzer.search.grid:GridSearch",
    "optuna": "analyzer.search.tpe:OptunaSearch",
    "model": "analyzer.search.predicted:ModelSearch",
}


def strategy_class(name: str) -> type[Search]:
    """The Search subclass registered as `name` (ValueError for an unknown name)."""
    try:
        target = CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})") from None
    module, _, attr = target.partition(":")
    cls: type[Search] = getattr(importlib.import_module(module), attr)
    return cls


def make_search(
    strategy: str,
    *,
    max_trials: int | None = None,
    time_budget_s: float | None = None,
    patience: int | None = None,
    **kwargs: Any,
) -> Search:
    """A new search of the strategy registered as `strategy`, with Search's keyword arguments;
    the spec's limits (max_trials, time_budget_s, patience) become the strategy's stopping rules
    (its `stop_rules`)."""
    cls = strategy_class(strategy)
    stop_rules = cls.stop_rules(
        kwargs["candidates"],
        kwargs.get("objective", "throughput"),
        max_trials=max_trials,
        time_budget_s=time_budget_s,
        patience=patience,
    )
    return cls(stop_rules=stop_rules, **kwargs)
