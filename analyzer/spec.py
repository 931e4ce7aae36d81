"""Sweep specs (sweeps/*.yaml): parse, validate with precise messages, resolve, write back.

Every problem is reported with the file, the key and what is allowed, all at once, so a user
fixes a spec in one pass. Paths in a spec are relative to the spec file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from analyzer.errors import SpecError
from analyzer.load.input_plan import InputPlan, gen_to_dict, parse_input_plan
from analyzer.load.shapes import ARRIVALS, LOAD_MODES, SCHEDULE_FORMS, Schedule, parse_schedule
from analyzer.search.registry import STRATEGY_NAMES as STRATEGIES

OBJECTIVES = ("throughput", "pareto")
KINDS = ("KIND_CPU", "KIND_GPU")
PROTOCOLS = ("grpc", "http")
PERCENTILES = (50, 90, 95, 99)  # the percentiles every measurement stores (p50_ms ... p99_ms)


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
    warmup_s: float = 0.3
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


@dataclass(frozen=True)
class SpaceSpec:
    """The values each knob may take; None = not given (defaults depend on the model, see
    analyzer.space.resolve_space)."""

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


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec."""

    model: str
    model_repository: Path | None = None
    url: str | None = None
    protocol: str = "grpc"
    budget_ms: float = 100.0
    percentile: float = 99.0
    confidence: float = 0.99  # how sure a "meets the budget" claim must be
    strategy: str = "optuna"
    objective: str = "throughput"  # throughput | pareto (multi-objective, returns a Pareto set)
    max_trials: int | None = None  # None: the stopping rule decides (see analyzer.search.base)
    time_budget_s: float | None = None
    patience: int | None = None  # optuna: stop after this many trials without improvement (None: auto)
    confirm_top: int = 3  # re-measure this many top configs at the end (0: no confirmation round)
    confirm_rounds: int = 3  # interleaved rounds of the confirmation (A B C A B C ...)
    seed: int = 0
    space: SpaceSpec = field(default_factory=SpaceSpec)
    # Pipelines: per-model spaces of the models `model` depends on (composing models of an
    # ensemble, a BLS model's callees; SpaceSpec() = load as it is, untuned). None: one model.
    models: dict[str, SpaceSpec] | None = None
    # Several independent models on one server, each with its share of the load and its own
    # budget (concurrent model execution). None: one model (or one pipeline).
    targets: dict[str, TargetSpec] | None = None
    load: LoadPlan = field(default_factory=LoadPlan)
    inputs: dict[str, list[int]] = field(default_factory=dict)  # fixed shapes (the list form of `inputs:`)
    # Request data: a file, or generators (the mapping form of `inputs:`) and a mix of lengths.
    # None: one random request of the fixed shapes.
    input_data: InputPlan | None = None
    triton_server_path: str | None = None
    metrics_port: int | None = None
    load_timeout_s: float = 120.0  # a config load slower than this means the server is stuck
    source: str = "<spec>"

    def to_dict(self) -> dict[str, Any]:
        """The spec as YAML-ready data (absolute paths), for the run directory's spec.yaml."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data["model_repository"] = str(self.model_repository) if self.model_repository else None
        def space(values: dict[str, Any]) -> dict[str, Any]:
            return {key: [list(v) if isinstance(v, tuple) else v for v in vals]
                    for key, vals in values.items() if vals is not None}

        data["space"] = space(data["space"])
        if self.input_data is not None:
            data["inputs"] = {**self.inputs, **{name: gen_to_dict(g) for name, g in self.input_data.inputs.items()}}
            data["input_data"] = self.input_data.to_dict()
        if self.models is not None:
            data["models"] = {name: space(values) for name, values in data["models"].items()}
        if self.targets is not None:
            data["targets"] = {name: {k: (space(v) if k == "space" else v) for k, v in values.items() if v is not None}
                               for name, values in data["targets"].items()}
        return {k: v for k, v in data.items() if v is not None}

    def with_overrides(self, **changes: Any) -> "SweepSpec":
        """A copy with command-line overrides applied (None values are ignored), re-validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "url" in changes:
            changes["model_repository"] = None
        updated = dataclasses.replace(self, **changes)
        problems = _cross_checks(updated)
        if problems:
            raise SpecError(f"{self.source}: " + "; ".join(problems))
        return updated


# -- parsing -------------------------------------------------------------------------------------


def _space(errors: "_Errors", space_data: Mapping[str, Any], prefix: str) -> SpaceSpec:
    """One model's knob values (`space:`, or one entry of `models:`)."""
    _unknown(errors, space_data, SPACE_KEYS, prefix)
    space_kw: dict[str, Any] = {}
    for key, minimum in (("instance_count", 1), ("max_batch_size", 0), ("max_queue_delay_us", 0)):
        if key in space_data:
            values = _int_values(errors, f"{prefix}{key}", space_data[key], minimum)
            if values is not None:
                space_kw[key] = values
    if "preferred_batch_size" in space_data:
        pref = _preferred(errors, f"{prefix}preferred_batch_size", space_data["preferred_batch_size"])
        if pref is not None:
            space_kw["preferred_batch_size"] = pref
    if "instance_kind" in space_data:
        kinds = space_data["instance_kind"]
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
            errors.add(f"{prefix}instance_kind", f"expected a list of {', '.join(KINDS)}, got {space_data['instance_kind']!r}")
        else:
            space_kw["instance_kind"] = tuple(dict.fromkeys(kinds))
    return SpaceSpec(**space_kw)

TOP_KEYS = {
    "model", "model_repository", "url", "protocol", "budget_ms", "percentile", "confidence",
    "strategy", "objective", "max_trials", "time_budget_s", "patience", "seed", "space", "models", "targets", "load",
    "inputs", "input_data", "triton_server_path", "metrics_port", "load_timeout_s", "confirm_top", "confirm_rounds",
}
SPACE_KEYS = {"instance_count", "max_batch_size", "max_queue_delay_us", "preferred_batch_size", "instance_kind"}
LOAD_KEYS = {f.name for f in dataclasses.fields(LoadPlan)}


class _Errors:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"key '{key}': {message}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n  ".join(self.items)
            raise SpecError(f"{self.source}: invalid sweep spec:\n  {lines}")


def _unknown(errors: _Errors, data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            errors.add(prefix + str(key), f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def _number(errors: _Errors, key: str, value: Any, *, minimum: float | None = None, integer: bool = False,
            exclusive: bool = False, maximum: float | None = None) -> Any:
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


def _choice(errors: _Errors, key: str, value: Any, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        errors.add(key, f"must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return None
    return value


def _int_values(errors: _Errors, key: str, value: Any, minimum: int) -> tuple[int, ...] | None:
    """A list of whole numbers, or a range {min, max[, step | scale: pow2]}."""
    what = f"a list of whole numbers >= {minimum}, or a range {{min: A, max: B}} with optional step or scale: pow2"
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
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)) or lo < minimum or hi < lo:
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
        return tuple(range(lo, hi + 1, step))
    if not isinstance(value, list) or not value:
        errors.add(key, f"expected {what}, got {value!r}")
        return None
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v < minimum]
    if bad:
        errors.add(key, f"expected {what}; {bad[0]!r} is not allowed")
        return None
    return tuple(sorted(set(value)))


def _preferred(errors: _Errors, key: str, value: Any) -> tuple[tuple[int, ...], ...] | None:
    """Alternatives for preferred_batch_size: a list of lists ([] = none set)."""
    if not isinstance(value, list) or not value:
        errors.add(key, "expected a list of alternatives, each a list of batch sizes, e.g. [[], [4, 8]]")
        return None
    out = []
    for alt in value:
        if not isinstance(alt, list) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in alt):
            errors.add(key, f"each alternative must be a list of whole numbers >= 1, got {alt!r}")
            return None
        out.append(tuple(sorted(set(alt))))
    return tuple(dict.fromkeys(out))


def _section(errors: _Errors, data: Any, key: str) -> Mapping[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        errors.add(key, f"expected a mapping of keys, got {type(data).__name__}")
        return {}
    return data


def _checked(data: Mapping[str, Any], checks: list[tuple[str, Callable[[Any], Any]]]) -> dict[str, Any]:
    """The values of `data` that pass their check (a failing check has recorded its error)."""
    out = {}
    for key, check in checks:
        if key in data and data[key] is not None:
            value = check(data[key])
            if value is not None:
                out[key] = value
    return out


def _shapes(errors: "_Errors", inputs: Mapping[str, Any], prefix: str) -> dict[str, list[int]]:
    """Request shapes per input name (no batch dimension)."""
    shapes: dict[str, list[int]] = {}
    for name, dims in inputs.items():
        if not isinstance(dims, list) or not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            errors.add(f"{prefix}{name}", f"expected a list of dimensions >= 1 (no batch dimension), got {dims!r}")
        else:
            shapes[str(name)] = list(dims)
    return shapes


def _schedule(errors: "_Errors", load: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """`load.schedule`: checked by parsing it (a trace file relative to the spec's directory);
    its levels are scale factors, so the mode is rate and the level range defaults to scales."""
    text = load["schedule"]
    if not isinstance(text, str):
        errors.add("load.schedule", f"expected a schedule such as 'ramp:100:400:30', got {text!r}")
        return {}
    kind, sep, path = text.partition(":")
    if kind in ("trace", "gaps") and sep and base_dir is not None and not Path(path).expanduser().is_absolute():
        text = f"{kind}:{base_dir / path}"
    try:
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


def parse_spec(data: Any, source: str = "<spec>", base_dir: Path | None = None) -> SweepSpec:
    """Validate spec data (as loaded from YAML); raise SpecError listing every problem."""
    errors = _Errors(source)
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: a sweep spec must be a YAML mapping (key: value lines), got {type(data).__name__}")
    _unknown(errors, data, TOP_KEYS, "")
    kw: dict[str, Any] = {"source": source}

    model = data.get("model")
    if data.get("targets") is not None and model is None and isinstance(data.get("targets"), Mapping):
        model = "+".join(map(str, data["targets"]))  # names the run; the targets are the models
    if not isinstance(model, str) or not model.strip():
        errors.add("model", "required: the name of the model to tune (a string)")
    else:
        kw["model"] = model

    repo, url = data.get("model_repository"), data.get("url")
    if repo is not None:
        if not isinstance(repo, str):
            errors.add("model_repository", f"expected a path, got {repo!r}")
        else:
            path = Path(repo).expanduser()
            kw["model_repository"] = (base_dir / path if base_dir and not path.is_absolute() else path).resolve()
    if url is not None:
        if not isinstance(url, str):
            errors.add("url", f"expected HOST:PORT, got {url!r}")
        else:
            kw["url"] = url

    checks: list[tuple[str, Callable[[Any], Any]]] = [
        ("protocol", lambda v: _choice(errors, "protocol", v, PROTOCOLS)),
        ("budget_ms", lambda v: _number(errors, "budget_ms", v, minimum=0, exclusive=True)),
        ("percentile", lambda v: _choice(errors, "percentile", v, PERCENTILES)),
        ("confidence", lambda v: _number(errors, "confidence", v, minimum=0.5, maximum=0.9999)),
        ("strategy", lambda v: _choice(errors, "strategy", v, STRATEGIES)),
        ("objective", lambda v: _choice(errors, "objective", v, OBJECTIVES)),
        ("max_trials", lambda v: _number(errors, "max_trials", v, minimum=1, integer=True)),
        ("time_budget_s", lambda v: _number(errors, "time_budget_s", v, minimum=0, exclusive=True)),
        ("patience", lambda v: _number(errors, "patience", v, minimum=1, integer=True)),
        ("seed", lambda v: _number(errors, "seed", v, minimum=0, integer=True)),
        ("metrics_port", lambda v: _number(errors, "metrics_port", v, minimum=1, integer=True, maximum=65535)),
        ("confirm_top", lambda v: _number(errors, "confirm_top", v, minimum=0, integer=True)),
        ("confirm_rounds", lambda v: _number(errors, "confirm_rounds", v, minimum=3, integer=True)),
        ("load_timeout_s", lambda v: _number(errors, "load_timeout_s", v, minimum=0, exclusive=True)),
    ]
    kw.update(_checked(data, checks))
    if data.get("triton_server_path") is not None:
        kw["triton_server_path"] = str(data["triton_server_path"])

    kw["space"] = _space(errors, _section(errors, data.get("space"), "space"), "space.")
    if data.get("models") is not None:
        models = _section(errors, data.get("models"), "models")
        parsed: dict[str, SpaceSpec] = {}
        for name, value in models.items():
            if not isinstance(name, str) or not name:
                errors.add("models", f"model names must be non-empty strings, got {name!r}")
                continue
            parsed[name] = _space(errors, _section(errors, value if value is not None else {}, f"models.{name}"),
                                  f"models.{name}.")
        kw["models"] = parsed

    if data.get("targets") is not None:
        targets = _section(errors, data.get("targets"), "targets")
        parsed_targets: dict[str, TargetSpec] = {}
        for name, value in targets.items():
            prefix = f"targets.{name}."
            entry = _section(errors, value if value is not None else {}, f"targets.{name}")
            _unknown(errors, entry, {"share", "budget_ms", "space", "inputs"}, prefix)
            t_kw: dict[str, Any] = {"space": _space(errors, _section(errors, entry.get("space"), prefix + "space"),
                                                    prefix + "space.")}
            if "share" in entry:
                t_kw["share"] = _number(errors, prefix + "share", entry["share"], minimum=0, exclusive=True)
            if "budget_ms" in entry:
                t_kw["budget_ms"] = _number(errors, prefix + "budget_ms", entry["budget_ms"], minimum=0, exclusive=True)
            t_kw["inputs"] = _shapes(errors, _section(errors, entry.get("inputs"), prefix + "inputs"), prefix + "inputs.")
            parsed_targets[str(name)] = TargetSpec(**{k: v for k, v in t_kw.items() if v is not None})
        if len(parsed_targets) < 2:
            errors.add("targets", "give at least two models (one model: use model: and space:)")
        if data.get("models") is not None:
            errors.add("targets", "targets: and models: cannot be combined (several models, or one pipeline)")
        kw["targets"] = parsed_targets

    load_data = _section(errors, data.get("load"), "load")
    _unknown(errors, load_data, LOAD_KEYS, "load.")
    load_kw: dict[str, Any] = {}
    load_checks: list[tuple[str, Callable[[Any], Any]]] = [
        ("mode", lambda v: _choice(errors, "load.mode", v, LOAD_MODES)),
        ("arrival", lambda v: _choice(errors, "load.arrival", v, ARRIVALS)),
        ("max_level", lambda v: _number(errors, "load.max_level", v, minimum=0, exclusive=True)),
        ("min_level", lambda v: _number(errors, "load.min_level", v, minimum=0, exclusive=True)),
        ("window_s", lambda v: _number(errors, "load.window_s", v, minimum=0.1)),
        ("warmup_s", lambda v: _number(errors, "load.warmup_s", v, minimum=0)),
        ("max_windows", lambda v: _number(errors, "load.max_windows", v, minimum=3, integer=True)),
        ("stability_pct", lambda v: _number(errors, "load.stability_pct", v, minimum=0, exclusive=True, maximum=100)),
        ("request_timeout_s", lambda v: _number(errors, "load.request_timeout_s", v, minimum=0, exclusive=True)),
        ("refine_steps", lambda v: _number(errors, "load.refine_steps", v, minimum=0, integer=True)),
        ("resolution_pct", lambda v: _number(errors, "load.resolution_pct", v, minimum=0, maximum=100)),
        ("min_window_s", lambda v: _number(errors, "load.min_window_s", v, minimum=0.05)),
        ("max_window_s", lambda v: _number(errors, "load.max_window_s", v, minimum=0.1)),
        ("workers", lambda v: None if v == "auto" else _number(errors, "load.workers", v, minimum=1, integer=True,
                                                                maximum=MAX_WORKERS)),
    ]
    load_kw.update(_checked(load_data, load_checks))
    if load_data.get("schedule") is not None:
        load_kw.update(_schedule(errors, load_data, base_dir))
    if load_data.get("max_inflight") is not None:
        load_kw["max_inflight"] = _number(errors, "load.max_inflight", load_data["max_inflight"], minimum=1, integer=True)
        if load_kw.get("mode", "concurrency") != "rate":
            errors.add("load.max_inflight", "caps an open loop: needs load.mode: rate (or a load.schedule)")
    kw["load"] = LoadPlan(**load_kw)

    problems: list[tuple[str, str]] = []
    kw["inputs"], kw["input_data"] = parse_input_plan(_section(errors, data.get("inputs"), "inputs"),
                                                      data.get("input_data"), base_dir, problems)
    for key, message in problems:
        errors.add(key, message)

    errors.raise_if_any()
    spec = SweepSpec(**kw)
    problems = _cross_checks(spec)
    if problems:
        for p in problems:
            errors.items.append(p)
        errors.raise_if_any()
    return spec


def _cross_checks(spec: SweepSpec) -> list[str]:
    """Rules that involve several keys (also re-run after command-line overrides)."""
    problems = []
    if (spec.model_repository is None) == (spec.url is None):
        problems.append("give exactly one of 'model_repository' (launch a local server) or 'url' (a running server)")
    if spec.model_repository is not None and not spec.model_repository.is_dir():
        problems.append(f"key 'model_repository': {spec.model_repository} is not a directory")
    if spec.budget_ms <= 0:
        problems.append(f"budget must be > 0 ms, got {spec.budget_ms:g}")
    if spec.load.min_level > spec.load.cap:
        problems.append(f"key 'load.min_level' ({spec.load.min_level:g}) exceeds 'load.max_level' ({spec.load.cap:g})")
    if spec.load.mode == "concurrency" and (spec.load.cap != int(spec.load.cap) or spec.load.min_level != int(spec.load.min_level)):
        problems.append("key 'load.max_level'/'load.min_level': concurrency levels must be whole numbers")
    if spec.load.min_window_s > spec.load.max_window_s:
        problems.append(f"key 'load.min_window_s' ({spec.load.min_window_s:g}) exceeds 'load.max_window_s' "
                        f"({spec.load.max_window_s:g})")
    if spec.strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {', '.join(STRATEGIES)}")
    if spec.load.schedule is not None and spec.targets is not None:
        problems.append("key 'load.schedule': several models (targets:) are not played against a schedule yet; "
                        "tune them with steady levels (leave load.schedule out)")
    if spec.max_trials is not None and spec.max_trials < 1:
        problems.append("max_trials must be >= 1")
    return problems


def load_spec(path: str | Path, url: str | None = None) -> SweepSpec:
    """Read and validate a sweep spec file. `url` (the command line's --url) replaces the
    spec's server before validation: the spec's `model_repository`, if any, is then neither
    used nor checked, and a spec with neither key is complete."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read sweep spec {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}: not valid YAML{where}: {problem}") from None
    if url is not None and isinstance(data, Mapping):
        data = {**{k: v for k, v in data.items() if k != "model_repository"}, "url": url}
    return parse_spec(data, str(path), path.resolve().parent)


def write_spec(spec: SweepSpec, path: str | Path) -> None:
    """Write the resolved spec as YAML (what a resumed run compares against)."""
    Path(path).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))


def spec_from_dict(data: Mapping[str, Any], source: str) -> SweepSpec:
    """Rebuild a spec from its to_dict() form (a run directory's spec.yaml)."""
    return parse_spec(dict(data), source, None)
