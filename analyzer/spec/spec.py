"""Sweep specs (sweeps/*.yaml): parse, validate with precise messages, resolve, write back.

Every problem is reported with the file, the key and what is allowed, all at once, so a user
fixes a spec in one pass. Paths in a spec are relative to the spec file.

This module owns the spec as a whole (SweepSpec, the top-level keys, the rules across keys,
reading and writing files); its sections are parsed in analyzer.spec.space (`space:`,
`models:`, `targets:`) and analyzer.spec.load (`load:`, `inputs:`, `input_data:`), with the
value checks of analyzer.spec.checks. Every public name of those modules is importable here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analyzer.errors import SpecError
from analyzer.files import write_atomic
from analyzer.load.input_plan import InputPlan, gen_to_dict
from analyzer.names import RULE as NAME_RULE
from analyzer.names import bad_name
from analyzer.schema import PERCENTILES

# Underscored as before the split, so that the checks below read (and diff) as they did.
from analyzer.spec.checks import Errors as _Errors
from analyzer.spec.checks import checked as _checked
from analyzer.spec.checks import choice as _choice
from analyzer.spec.checks import number as _number
from analyzer.spec.checks import section as _section
from analyzer.spec.checks import unknown_keys as _unknown
from analyzer.spec.load import (
    DEFAULT_MAX_LEVEL,
    DEFAULT_MAX_SCALE,
    DEFAULT_MIN_SCALE,
    LOAD_KEYS,
    MAX_WORKERS,
    LoadPlan,
    load_size_problems,
    parse_inputs,
    parse_load,
)
from analyzer.spec.space import (
    KINDS,
    SPACE_KEYS,
    SpaceSpec,
    TargetSpec,
    parse_models,
    parse_space,
    parse_targets,
)
from analyzer.textfile import read_text, user_path

OBJECTIVES = ("throughput", "pareto")
# The search strategies (analyzer.search.registry maps each name to its class).
STRATEGIES = ("grid", "optuna", "model")
PROTOCOLS = ("grpc", "http")

__all__ = [
    "DEFAULT_MAX_LEVEL",
    "DEFAULT_MAX_SCALE",
    "DEFAULT_MIN_SCALE",
    "KINDS",
    "LOAD_KEYS",
    "MAX_WORKERS",
    "OBJECTIVES",
    "PROTOCOLS",
    "SPACE_KEYS",
    "STRATEGIES",
    "TOP_KEYS",
    "LoadPlan",
    "SpaceSpec",
    "SweepSpec",
    "TargetSpec",
    "load_spec",
    "parse_spec",
    "spec_from_dict",
    "write_spec",
]


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
            return {
                key: [list(v) if isinstance(v, tuple) else v for v in vals]
                for key, vals in values.items()
                if vals is not None
            }

        data["space"] = space(data["space"])
        if self.input_data is not None:
            data["inputs"] = {
                **self.inputs,
                **{name: gen_to_dict(g) for name, g in self.input_data.inputs.items()},
            }
            data["input_data"] = self.input_data.to_dict()
        if self.models is not None:
            data["models"] = {name: space(values) for name, values in data["models"].items()}
        if self.targets is not None:
            data["targets"] = {
                name: {k: (space(v) if k == "space" else v) for k, v in values.items() if v is not None}
                for name, values in data["targets"].items()
            }
        return {k: v for k, v in data.items() if v is not None}

    def with_overrides(self, **changes: Any) -> SweepSpec:
        """A copy with command-line overrides applied (None values are ignored), re-validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "url" in changes:
            changes["model_repository"] = None
        updated = dataclasses.replace(self, **changes)
        problems = _cross_checks(updated)
        if problems:
            raise SpecError(f"{self.source}: " + "; ".join(problems))
        return updated


TOP_KEYS = {
    "model",
    "model_repository",
    "url",
    "protocol",
    "budget_ms",
    "percentile",
    "confidence",
    "strategy",
    "objective",
    "max_trials",
    "time_budget_s",
    "patience",
    "seed",
    "space",
    "models",
    "targets",
    "load",
    "inputs",
    "input_data",
    "triton_server_path",
    "metrics_port",
    "load_timeout_s",
    "confirm_top",
    "confirm_rounds",
}


def parse_spec(
    data: Any, source: str = "<spec>", base_dir: Path | None = None, recorded: bool = False
) -> SweepSpec:
    """Validate spec data (as loaded from YAML); raise SpecError listing every problem.
    `recorded`: a run directory's own spec, read to report the run: the server it names and the
    files it plays need not exist (nothing is started or played again)."""
    errors = _Errors(source)
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{source}: a sweep spec must be a YAML mapping (key: value lines), got {type(data).__name__}"
        )
    _unknown(errors, data, TOP_KEYS, "")
    kw: dict[str, Any] = {"source": source}

    model = data.get("model")
    if data.get("targets") is not None and model is None and isinstance(data.get("targets"), Mapping):
        model = "+".join(map(str, data["targets"]))  # names the run; the targets are the models
    if not isinstance(model, str) or not model.strip():
        errors.add("model", "required: the name of the model to tune (a string)")
    elif bad_name(model):
        errors.add("model", f"{bad_name(model)} ({NAME_RULE})")
    else:
        kw["model"] = model

    repo, url = data.get("model_repository"), data.get("url")
    if repo is not None:
        if not isinstance(repo, str):
            errors.add("model_repository", f"expected a path, got {repo!r}")
        else:
            path = user_path(repo)
            kw["model_repository"] = (
                base_dir / path if base_dir and not path.is_absolute() else path
            ).resolve()
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
        (
            "metrics_port",
            lambda v: _number(errors, "metrics_port", v, minimum=1, integer=True, maximum=65535),
        ),
        ("confirm_top", lambda v: _number(errors, "confirm_top", v, minimum=0, integer=True)),
        ("confirm_rounds", lambda v: _number(errors, "confirm_rounds", v, minimum=3, integer=True)),
        ("load_timeout_s", lambda v: _number(errors, "load_timeout_s", v, minimum=0, exclusive=True)),
    ]
    kw.update(_checked(data, checks))
    if data.get("triton_server_path") is not None:
        kw["triton_server_path"] = str(data["triton_server_path"])

    kw["space"] = parse_space(errors, _section(errors, data.get("space"), "space"), "space.")
    if data.get("models") is not None:
        kw["models"] = parse_models(errors, data.get("models"))
    if data.get("targets") is not None:
        kw["targets"] = parse_targets(errors, data.get("targets"), with_models=data.get("models") is not None)
    kw["load"] = parse_load(errors, data.get("load"), base_dir, recorded)
    kw["inputs"], kw["input_data"] = parse_inputs(
        errors, data.get("inputs"), data.get("input_data"), base_dir
    )

    errors.raise_if_any()
    spec = SweepSpec(**kw)
    problems = _cross_checks(spec, recorded)
    if problems:
        for p in problems:
            errors.items.append(p)
        errors.raise_if_any()
    return spec


def _cross_checks(spec: SweepSpec, recorded: bool = False) -> list[str]:
    """Rules that involve several keys (also re-run after command-line overrides). A recorded
    run's spec (`recorded`) names a server it will not start again: its server keys go unchecked."""
    problems = []
    if not recorded and (spec.model_repository is None) == (spec.url is None):
        problems.append(
            "give exactly one of 'model_repository' (launch a local server) or 'url' (a running server)"
        )
    if not recorded and spec.model_repository is not None and not spec.model_repository.is_dir():
        problems.append(f"key 'model_repository': {spec.model_repository} is not a directory")
    if spec.budget_ms <= 0:
        problems.append(f"budget must be > 0 ms, got {spec.budget_ms:g}")
    if spec.load.min_level > spec.load.cap:
        problems.append(
            f"key 'load.min_level' ({spec.load.min_level:g}) exceeds 'load.max_level' ({spec.load.cap:g})"
        )
    if spec.load.mode == "concurrency" and (
        spec.load.cap != int(spec.load.cap) or spec.load.min_level != int(spec.load.min_level)
    ):
        problems.append("key 'load.max_level'/'load.min_level': concurrency levels must be whole numbers")
    if spec.load.min_window_s > spec.load.max_window_s:
        problems.append(
            f"key 'load.min_window_s' ({spec.load.min_window_s:g}) exceeds 'load.max_window_s' "
            f"({spec.load.max_window_s:g})"
        )
    if spec.strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {', '.join(STRATEGIES)}")
    if spec.load.schedule is not None and spec.targets is not None:
        problems.append(
            "key 'load.schedule': several models (targets:) are not played against a schedule yet; "
            "tune them with steady levels (leave load.schedule out)"
        )
    if spec.max_trials is not None and spec.max_trials < 1:
        problems.append("max_trials must be >= 1")
    problems.extend(load_size_problems(spec.load, recorded))
    return problems


def load_spec(path: str | Path, url: str | None = None, recorded: bool = False) -> SweepSpec:
    """Read and validate a sweep spec file. `url` (the command line's --url) replaces the
    spec's server before validation: the spec's `model_repository`, if any, is then neither
    used nor checked, and a spec with neither key is complete."""
    path = Path(path)
    text = read_text(path, "a sweep spec", SpecError)
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise SpecError(f"{path}: not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}: not valid YAML{where}: {problem}") from None
    if url is not None and isinstance(data, Mapping):
        data = {**{k: v for k, v in data.items() if k != "model_repository"}, "url": url}
    return parse_spec(data, str(path), path.resolve().parent, recorded)


def write_spec(spec: SweepSpec, path: str | Path) -> None:
    """Write the resolved spec as YAML (what a resumed run compares against)."""
    write_atomic(path, yaml.safe_dump(spec.to_dict(), sort_keys=False))


def spec_from_dict(data: Mapping[str, Any], source: str) -> SweepSpec:
    """Rebuild a spec from its to_dict() form (a run directory's spec.yaml)."""
    return parse_spec(dict(data), source, None)
