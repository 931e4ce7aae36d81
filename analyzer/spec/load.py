"""The spec's load: how each config is loaded while its capacity is searched (`load:`, the
LoadPlan) and what requests it is sent (`inputs:` and `input_data:`, parsed by
analyzer.load.input_plan).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.limits import MAX_SCHEDULE_REQUESTS
from analyzer.load.input_plan import InputPlan, parse_input_plan
from analyzer.load.shapes import (
    ARRIVALS,
    DEFAULT_WARMUP_S,
    LOAD_MODES,
    SCHEDULE_FORMS,
    Schedule,
    expected_requests,
    level_horizon_s,
    open_loop_problem,
    parse_schedule,
)
from analyzer.spec.checks import Errors, checked, choice, number, section, unknown_keys
from analyzer.textfile import user_path

MAX_WORKERS = 256  # load-generator processes (one per core is the useful most)

# Safety caps on the load level when the spec gives none: the level search aims at the budget's
# break, so these only stop a model that never breaks it from being loaded without end.
DEFAULT_MAX_LEVEL = {"concurrency": 1024.0, "rate": 100_000.0}
DEFAULT_MAX_SCALE = 64.0  # a schedule's largest scale factor
DEFAULT_MIN_SCALE = 0.1


@dataclass(frozen=True)
class LoadPlan:
    """How each config is loaded while its capacity is searched."""

    mode: str = "concurrency"  # concurrency | rate
    max_level: float | None = None  # safety cap on concurrency or rate (None: DEFAULT_MAX_LEVEL)
    min_level: float = 1  # the lowest level the search may go down to
    arrival: str = "poisson"  # open loop only
    window_s: float | None = None  # fixed window length; None: windows sized by requests
    warmup_s: float = DEFAULT_WARMUP_S
    max_windows: int = 10
    stability_pct: float = 10.0
    request_timeout_s: float = 30.0
    refine_steps: int = 3  # most refinements between the last good and the first bad level
    resolution_pct: float = 3.0  # stop refining when the two levels' throughputs are this close
    min_window_s: float = 0.25
    max_window_s: float = 2.0
    workers: int | None = None  # load-generator processes; None: automatic (analyzer.load.split)
    # Rate mode: play this load schedule (its command-line form, analyzer.load.shapes) at each
    # level instead of a steady rate; the levels are then scale factors of its rates.
    schedule: str | None = None
    max_inflight: int | None = None  # open loop: at most this many requests in flight

    @property
    def cap(self) -> float:
        """The highest level the search may measure."""
        if self.max_level is not None:
            return self.max_level
        return DEFAULT_MAX_SCALE if self.schedule is not None else DEFAULT_MAX_LEVEL[self.mode]

    @property
    def level_kind(self) -> str:
        """What the levels are, as tables and reports name them: concurrency, rate, or
        schedule (scale factors of the schedule's rates)."""
        return "schedule" if self.schedule is not None else self.mode

    def parsed_schedule(self) -> Schedule | None:
        """The schedule, parsed (None without one)."""
        return parse_schedule(self.schedule) if self.schedule is not None else None


LOAD_KEYS = {f.name for f in dataclasses.fields(LoadPlan)}


def parse_load(errors: Errors, data: Any, base_dir: Path | None, recorded: bool = False) -> LoadPlan:
    """`load:` (absent: every default)."""
    load_data = section(errors, data, "load")
    unknown_keys(errors, load_data, LOAD_KEYS, "load.")
    load_kw: dict[str, Any] = {}
    checks: list[tuple[str, Callable[[Any], Any]]] = [
        ("mode", lambda v: choice(errors, "load.mode", v, LOAD_MODES)),
        ("arrival", lambda v: choice(errors, "load.arrival", v, ARRIVALS)),
        ("max_level", lambda v: number(errors, "load.max_level", v, minimum=0, exclusive=True)),
        ("min_level", lambda v: number(errors, "load.min_level", v, minimum=0, exclusive=True)),
        ("window_s", lambda v: number(errors, "load.window_s", v, minimum=0.1)),
        ("warmup_s", lambda v: number(errors, "load.warmup_s", v, minimum=0)),
        ("max_windows", lambda v: number(errors, "load.max_windows", v, minimum=3, integer=True)),
        (
            "stability_pct",
            lambda v: number(errors, "load.stability_pct", v, minimum=0, exclusive=True, maximum=100),
        ),
        (
            "request_timeout_s",
            lambda v: number(errors, "load.request_timeout_s", v, minimum=0, exclusive=True),
        ),
        ("refine_steps", lambda v: number(errors, "load.refine_steps", v, minimum=0, integer=True)),
        ("resolution_pct", lambda v: number(errors, "load.resolution_pct", v, minimum=0, maximum=100)),
        ("min_window_s", lambda v: number(errors, "load.min_window_s", v, minimum=0.05)),
        ("max_window_s", lambda v: number(errors, "load.max_window_s", v, minimum=0.1)),
        (
            "workers",
            lambda v: (
                None
                if v == "auto"
                else number(errors, "load.workers", v, minimum=1, integer=True, maximum=MAX_WORKERS)
            ),
        ),
    ]
    load_kw.update(checked(load_data, checks))
    if load_data.get("schedule") is not None:
        load_kw.update(parse_schedule_key(errors, load_data, base_dir, recorded))
    if load_data.get("max_inflight") is not None:
        load_kw["max_inflight"] = number(
            errors, "load.max_inflight", load_data["max_inflight"], minimum=1, integer=True
        )
        if load_kw.get("mode", "concurrency") != "rate":
            errors.add("load.max_inflight", "caps an open loop: needs load.mode: rate (or a load.schedule)")
    return LoadPlan(**load_kw)


def parse_schedule_key(
    errors: Errors, load: Mapping[str, Any], base_dir: Path | None, recorded: bool = False
) -> dict[str, Any]:
    """`load.schedule`: checked by parsing it (a trace file relative to the spec's directory);
    its levels are scale factors, so the mode is rate and the level range defaults to scales.
    `recorded` (a run directory's own spec, read to report it): a trace file is not read, since
    reporting a finished run plays nothing (the file may be gone or changed since)."""
    text = load["schedule"]
    if not isinstance(text, str):
        errors.add("load.schedule", f"expected a schedule such as 'ramp:100:400:30', got {text!r}")
        return {}
    kind, sep, path = text.partition(":")
    relative = not user_path(path).is_absolute()
    if kind in ("trace", "gaps") and sep and base_dir is not None and relative:
        text = f"{kind}:{base_dir / path}"
    try:
        # A recorded run's trace is not played again: its file is not read (it may be gone).
        if not (recorded and kind in ("trace", "gaps")):
            parse_schedule(text)
    except ValueError as exc:
        errors.add("load.schedule", f"{exc}; forms: {', '.join(SCHEDULE_FORMS)}")
        return {}
    if load.get("mode", "rate") != "rate":
        errors.add("load.schedule", "a schedule is an open loop: set load.mode: rate (or leave it out)")
    out: dict[str, Any] = {"schedule": text, "mode": "rate"}
    if "min_level" not in load:
        out["min_level"] = DEFAULT_MIN_SCALE
    return out


def load_size_problems(plan: LoadPlan, recorded: bool = False) -> list[str]:
    """The load's send times, counted at its largest level before any is made: a schedule at
    load.max_level (its largest scale), or a steady rate over the longest a level runs, must
    stay within MAX_SCHEDULE_REQUESTS. A recorded run's trace is not read again (nothing is
    played)."""
    if plan.schedule is not None:
        if recorded and plan.schedule.partition(":")[0] in ("trace", "gaps"):
            return []
        try:
            schedule = parse_schedule(plan.schedule)
        except ValueError:
            return []  # a recorded run's schedule that no longer parses: reported as it is
        requests = expected_requests(schedule, plan.cap)
        fix = "shorten the schedule or lower its rates"
        if requests > 0:
            most = plan.cap * MAX_SCHEDULE_REQUESTS / requests
            fix = f"lower load.max_level to {most:.3g} or less, or {fix}"
        what = f"key 'load.schedule': {plan.schedule} at load.max_level {plan.cap:g} (its largest scale)"
        problem = open_loop_problem(requests, what, fix)
    elif plan.mode == "rate":
        horizon = level_horizon_s(
            plan.warmup_s, plan.window_s if plan.window_s is not None else plan.max_window_s, plan.max_windows
        )
        problem = open_loop_problem(
            plan.cap * horizon,
            f"key 'load.max_level': a rate level of {plan.cap:g}/s for up to {horizon:g} s (the warm-up "
            "and every window)",
            "lower load.max_level, load.max_windows or the windows' length",
        )
    else:
        return []
    return [problem] if problem else []


def parse_inputs(
    errors: Errors, inputs: Any, input_data: Any, base_dir: Path | None
) -> tuple[dict[str, list[int]], InputPlan | None]:
    """`inputs:` and `input_data:`: the fixed request shapes and the request data plan (None:
    one random request of the fixed shapes)."""
    problems: list[tuple[str, str]] = []
    shapes, plan = parse_input_plan(section(errors, inputs, "inputs"), input_data, base_dir, problems)
    for key, message in problems:
        errors.add(key, message)
    return shapes, plan
