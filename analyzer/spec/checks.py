"""Checks of single spec values: each records a precise problem (key, what is allowed, what
was given) in an Errors collector and returns None, so that parsing goes on and a user sees
every problem of a spec at once. Used by analyzer.spec.spec and its section parsers."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from analyzer.errors import SpecError
from analyzer.limits import MAX_SPACE_POINTS


class Errors:
    """The problems found so far in one spec."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        """Record a problem with one key."""
        self.items.append(f"key '{key}': {message}")

    def raise_if_any(self) -> None:
        """Raise one SpecError listing every problem recorded (if any)."""
        if self.items:
            lines = "\n  ".join(self.items)
            raise SpecError(f"{self.source}: invalid sweep spec:\n  {lines}")


def unknown_keys(errors: Errors, data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    """Record each key of `data` that is not in `allowed` (`prefix` names the section)."""
    for key in data:
        if key not in allowed:
            errors.add(prefix + str(key), f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def number(
    errors: Errors,
    key: str,
    value: Any,
    *,
    minimum: float | None = None,
    integer: bool = False,
    exclusive: bool = False,
    maximum: float | None = None,
) -> Any:
    """A finite number (a whole one with `integer`) within the bounds, or None."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        errors.add(key, f"expected {'a whole number' if integer else 'a number'}, got {value!r}")
        return None
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        errors.add(key, f"must be {'>' if exclusive else '>='} {minimum:g}, got {value!r}")
        return None
    if maximum is not None and value > maximum:
        errors.add(key, f"must be <= {maximum:g}, got {value!r}")
        return None
    return value


def choice(errors: Errors, key: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    """One of `allowed`, or None."""
    if value not in allowed:
        errors.add(key, f"must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return None
    return value


def int_values(errors: Errors, key: str, value: Any, minimum: int) -> tuple[int, ...] | None:
    """A list of whole numbers, or a range {min, max[, step | scale: pow2]}."""
    what = (
        f"a list of whole numbers >= {minimum}, or a range {{min: A, max: B}} "
        "with optional step or scale: pow2"
    )
    if isinstance(value, bool):
        errors.add(key, f"expected {what}, got {value!r}")
        return None
    if isinstance(value, int):
        value = [value]
    if isinstance(value, Mapping):
        extra = set(value) - {"min", "max", "step", "scale"}
        if extra or "min" not in value or "max" not in value:
            errors.add(key, f"expected {what}, got {dict(value)!r}")
            return None
        lo, hi = value["min"], value["max"]
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
        if not whole or lo < minimum or hi < lo:
            errors.add(key, f"range needs whole numbers {minimum} <= min <= max, got min={lo!r}, max={hi!r}")
            return None
        scale = value.get("scale", "linear")
        if scale == "pow2":
            if "step" in value:
                errors.add(key, "give step or scale: pow2, not both")
                return None
            values, v = [], 1
            while v <= hi:
                if v >= lo:
                    values.append(v)
                v *= 2
            if lo == 0:
                values.insert(0, 0)
            if not values:
                errors.add(key, f"no power of two between {lo} and {hi}")
                return None
            return tuple(values)
        if scale != "linear":
            errors.add(key, f"scale must be linear or pow2, got {scale!r}")
            return None
        step = value.get("step", 1)
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            errors.add(key, f"step must be a whole number >= 1, got {step!r}")
            return None
        count = (hi - lo) // step + 1  # counted, not built: a range can be astronomical
        if count > MAX_SPACE_POINTS:
            errors.add(
                key,
                f"the range has {count} values; the limit is {MAX_SPACE_POINTS} "
                "(a model's whole space): give a larger step, scale: pow2, or a list",
            )
            return None
        return tuple(range(lo, hi + 1, step))
    if not isinstance(value, list) or not value:
        errors.add(key, f"expected {what}, got {value!r}")
        return None
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v < minimum]
    if bad:
        errors.add(key, f"expected {what}; {bad[0]!r} is not allowed")
        return None
    if len(value) > MAX_SPACE_POINTS:
        errors.add(key, f"{len(value)} values; the limit is {MAX_SPACE_POINTS} (a model's whole space)")
        return None
    return tuple(sorted(set(value)))


def preferred_sizes(errors: Errors, key: str, value: Any) -> tuple[tuple[int, ...], ...] | None:
    """Alternatives for preferred_batch_size: a list of lists ([] = none set)."""
    if not isinstance(value, list) or not value:
        errors.add(key, "expected a list of alternatives, each a list of batch sizes, e.g. [[], [4, 8]]")
        return None
    out = []
    for alt in value:
        if not isinstance(alt, list) or not all(_positive_int(v) for v in alt):
            errors.add(key, f"each alternative must be a list of whole numbers >= 1, got {alt!r}")
            return None
        out.append(tuple(sorted(set(alt))))
    return tuple(dict.fromkeys(out))


def section(errors: Errors, data: Any, key: str) -> Mapping[str, Any]:
    """A section of the spec (a mapping; absent: empty)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        errors.add(key, f"expected a mapping of keys, got {type(data).__name__}")
        return {}
    return data


def checked(data: Mapping[str, Any], checks: list[tuple[str, Callable[[Any], Any]]]) -> dict[str, Any]:
    """The values of `data` that pass their check (a failing check has recorded its error)."""
    out = {}
    for key, check in checks:
        if key in data and data[key] is not None:
            value = check(data[key])
            if value is not None:
                out[key] = value
    return out


def shapes(errors: Errors, inputs: Mapping[str, Any], prefix: str) -> dict[str, list[int]]:
    """Request shapes per input name (no batch dimension)."""
    out: dict[str, list[int]] = {}
    for name, dims in inputs.items():
        if not isinstance(dims, list) or not dims or not all(_positive_int(d) for d in dims):
            errors.add(
                f"{prefix}{name}", f"expected a list of dimensions >= 1 (no batch dimension), got {dims!r}"
            )
        else:
            out[str(name)] = list(dims)
    return out


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
