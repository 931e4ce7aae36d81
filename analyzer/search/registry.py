"""The search strategies by name: the one mapping behind `make_search`, the spec's allowed
`strategy:` values and `tritune sweep --strategy`.

A strategy is a `Search` subclass in its own module under analyzer/search/; adding one is that
file plus one line in STRATEGIES. Classes are named as "module:Class" and imported on first use,
so this module imports nothing: analyzer.spec reads the names without loading Optuna (and
without an import cycle, since the searches import analyzer.space, which imports analyzer.spec).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analyzer.search.base import Search

STRATEGIES: dict[str, str] = {
    "grid": "analyzer.search.grid:GridSearch",
    "optuna": "analyzer.search.tpe:OptunaSearch",
}

STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)


def strategy_class(name: str) -> type[Search]:
    """The Search subclass registered as `name` (ValueError for an unknown name)."""
    try:
        target = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGY_NAMES)})") from None
    module, _, attr = target.partition(":")
    cls: type[Search] = getattr(importlib.import_module(module), attr)
    return cls


def make_search(strategy: str, **kwargs: Any) -> Search:
    """A new search of the strategy registered as `strategy`, with Search's keyword arguments."""
    return strategy_class(strategy)(**kwargs)
