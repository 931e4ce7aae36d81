"""The spec's search space: `space:` (the knob values of the model), `models:` (per-model
spaces of a pipeline's steps) and `targets:` (several independent models on one server).

Parsing only; which candidates are valid for a model is analyzer.config.space's job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzer.limits import MAX_SPACE_POINTS
from analyzer.names import RULE as NAME_RULE
from analyzer.names import bad_name
from analyzer.spec.checks import Errors, int_values, number, preferred_sizes, section, shapes, unknown_keys

KINDS = ("KIND_CPU", "KIND_GPU")
SPACE_KEYS = {
    "instance_count",
    "max_batch_size",
    "max_queue_delay_us",
    "preferred_batch_size",
    "instance_kind",
}
TARGET_KEYS = {"share", "budget_ms", "space", "inputs"}

# The values of a knob the spec leaves out, for a model that batches (analyzer.config.space resolves
# them against the model; here they bound the size of the space before any model is known).
DEFAULT_INSTANCE_COUNTS = (1, 2)
DEFAULT_BATCH_SIZES = (1, 8, 32)
DEFAULT_QUEUE_DELAYS = (0, 1000)
DEFAULT_KNOB_COUNTS = {
    "instance_count": len(DEFAULT_INSTANCE_COUNTS),
    "max_batch_size": len(DEFAULT_BATCH_SIZES),
    "max_queue_delay_us": len(DEFAULT_QUEUE_DELAYS),
    "preferred_batch_size": 1,
    "instance_kind": 1,
}
KNOB_ORDER = tuple(DEFAULT_KNOB_COUNTS)  # how a space's size is shown


@dataclass(frozen=True)
class SpaceSpec:
    """The values each knob may take; None = not given (defaults depend on the model, see
    analyzer.config.space.resolve_space)."""

    instance_count: tuple[int, ...] | None = None
    max_batch_size: tuple[int, ...] | None = None
    max_queue_delay_us: tuple[int, ...] | None = None
    preferred_batch_size: tuple[tuple[int, ...], ...] | None = None  # () = none set
    instance_kind: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TargetSpec:
    """One of several independent models tuned together on one server (`targets:`)."""

    share: float = 1.0  # its part of each load level (shares are relative to their sum)
    budget_ms: float | None = None  # None: the spec's budget_ms
    space: SpaceSpec = field(default_factory=SpaceSpec)
    inputs: dict[str, list[int]] = field(default_factory=dict)


def parse_space(errors: Errors, space_data: Mapping[str, Any], prefix: str) -> SpaceSpec:
    """One model's knob values (`space:`, or one entry of `models:`)."""
    unknown_keys(errors, space_data, SPACE_KEYS, prefix)
    space_kw: dict[str, Any] = {}
    for key, minimum in (("instance_count", 1), ("max_batch_size", 0), ("max_queue_delay_us", 0)):
        if key in space_data:
            values = int_values(errors, f"{prefix}{key}", space_data[key], minimum)
            if values is not None:
                space_kw[key] = values
    if "preferred_batch_size" in space_data:
        pref = preferred_sizes(errors, f"{prefix}preferred_batch_size", space_data["preferred_batch_size"])
        if pref is not None:
            space_kw["preferred_batch_size"] = pref
    if "instance_kind" in space_data:
        kinds = space_data["instance_kind"]
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
            errors.add(
                f"{prefix}instance_kind",
                f"expected a list of {', '.join(KINDS)}, got {space_data['instance_kind']!r}",
            )
        else:
            space_kw["instance_kind"] = tuple(dict.fromkeys(kinds))
    space = SpaceSpec(**space_kw)
    problem = space_size_problem({k: len(v) for k, v in space_kw.items()}, DEFAULT_KNOB_COUNTS)
    if problem:
        errors.add(prefix.rstrip(".") or "space", problem)
    return space


def space_size_problem(counts: Mapping[str, int], defaults: Mapping[str, int] | None = None) -> str:
    """'' when a space of these knob value counts (and `defaults` for the knobs not given) is
    within MAX_SPACE_POINTS, else what is wrong: its size, the knobs that make it and the limit.
    The size is the product of the counts, never the candidates themselves."""
    defaults = defaults or {}
    factors = [(knob, counts.get(knob, defaults.get(knob, 1))) for knob in KNOB_ORDER]
    size = math.prod(n for _, n in factors)
    if size <= MAX_SPACE_POINTS:
        return ""
    shown = " x ".join(f"{knob} {n}" for knob, n in factors if n > 1)
    return (
        f"{size} candidates ({shown}); the limit is {MAX_SPACE_POINTS} per model: give fewer values "
        "(a larger step, scale: pow2, or a list)"
    )


def parse_models(errors: Errors, data: Any) -> dict[str, SpaceSpec]:
    """`models:`: the spaces of a pipeline's other models, by name."""
    parsed: dict[str, SpaceSpec] = {}
    for name, value in section(errors, data, "models").items():
        if not isinstance(name, str) or not name:
            errors.add("models", f"model names must be non-empty strings, got {name!r}")
            continue
        if bad_name(name):
            errors.add("models", f"{bad_name(name)} ({NAME_RULE})")
            continue
        entry = section(errors, value if value is not None else {}, f"models.{name}")
        parsed[name] = parse_space(errors, entry, f"models.{name}.")
    return parsed


def parse_targets(errors: Errors, data: Any, with_models: bool) -> dict[str, TargetSpec]:
    """`targets:`: at least two models, each with its share, budget, space and shapes;
    `with_models` says the spec also has `models:`, which cannot be combined with it."""
    parsed: dict[str, TargetSpec] = {}
    for name, value in section(errors, data, "targets").items():
        if bad_name(str(name)):
            errors.add("targets", f"{bad_name(str(name))} ({NAME_RULE})")
            continue
        prefix = f"targets.{name}."
        entry = section(errors, value if value is not None else {}, f"targets.{name}")
        unknown_keys(errors, entry, TARGET_KEYS, prefix)
        space = section(errors, entry.get("space"), prefix + "space")
        kw: dict[str, Any] = {"space": parse_space(errors, space, prefix + "space.")}
        if "share" in entry:
            kw["share"] = number(errors, prefix + "share", entry["share"], minimum=0, exclusive=True)
        if "budget_ms" in entry:
            kw["budget_ms"] = number(
                errors, prefix + "budget_ms", entry["budget_ms"], minimum=0, exclusive=True
            )
        inputs = section(errors, entry.get("inputs"), prefix + "inputs")
        kw["inputs"] = shapes(errors, inputs, prefix + "inputs.")
        parsed[str(name)] = TargetSpec(**{k: v for k, v in kw.items() if v is not None})
    if len(parsed) < 2:
        errors.add("targets", "give at least two models (one model: use model: and space:)")
    if with_models:
        errors.add("targets", "targets: and models: cannot be combined (several models, or one pipeline)")
    return parsed
