"""The request-data plan: a spec's `inputs:` and `input_data:` keys (or a profile's `--input-data`
file) parsed into an InputPlan, and the plan written back as those keys.

Parsing is pure: it checks the keys' own form and appends every problem as (key, message), so
the spec can name them all at once. What the model's inputs accept is checked when the requests
are built (analyzer.load.requests). `plan_from_file` reads the profile's file and raises
InputDataError (exit 2). The forms:

    inputs:
      input_ids: {shape: [seq], range: [0, 30521]}        # uniform whole numbers, inclusive
      attention_mask: {shape: [seq], value: 1}             # a constant
      scores: {distribution: normal, mean: 0, std: 2}
      word: {strings: [hello, world]}                      # BYTES, drawn from the list
    input_data:
      dims: {seq: {16: 6, 64: 3, 128: 1}}   # a named dimension: lengths and their weights
      requests: 100                          # distinct requests prebuilt (default 100)
      order: cycle                           # or sample

`input_data: FILE` (or `input_data: {file: FILE}`) names perf_analyzer's JSON format or
.npy/.npz files instead (read by analyzer.load.data).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.limits import MAX_REQUESTS
from analyzer.load.data import InputDataError
from analyzer.textfile import read_text, user_path

ORDERS = ("cycle", "sample")
DISTRIBUTIONS = ("uniform", "normal", "zipf")
DATA_FILE_SUFFIXES = (".json", ".npy", ".npz")


@dataclass(frozen=True)
class InputGen:
    """How one input's values are generated. `shape` excludes the batch dimension; a string
    entry names a dimension of the plan's `dims` (shared by every input that names it)."""

    shape: tuple[int | str, ...] | None = None
    low: float | None = None  # inclusive range of values
    high: float | None = None
    value: float | None = None  # every element this constant
    distribution: str = "uniform"
    mean: float = 0.0
    std: float = 1.0
    a: float = 1.2  # zipf exponent: rank k of the range drawn with weight 1 / k**a
    strings: tuple[str, ...] | None = None  # BYTES: elements drawn from these


@dataclass(frozen=True)
class InputPlan:
    """Where requests come from: a data file, or generators per input (the rest random)."""

    file: Path | None = None
    order: str = "cycle"
    requests: int | None = None  # generated requests prebuilt (None: requests.GENERATED_REQUESTS)
    inputs: Mapping[str, InputGen] = field(default_factory=dict)
    dims: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)

    @property
    def generated(self) -> bool:
        """Whether the plan generates varied data (else one random request, as without a plan)."""
        return bool(self.inputs or self.dims or self.requests)

    def to_dict(self) -> dict[str, Any]:
        """The `input_data:` mapping this plan was parsed from (inputs go under `inputs:`)."""
        out: dict[str, Any] = {"order": self.order}
        if self.file is not None:
            out["file"] = str(self.file)
        if self.requests is not None:
            out["requests"] = self.requests
        if self.dims:
            out["dims"] = {
                name: {length: weight for length, weight in mix} for name, mix in self.dims.items()
            }
        return out


def gen_to_dict(gen: InputGen) -> dict[str, Any]:
    """One generator as its `inputs:` mapping (only what differs from the defaults)."""
    out: dict[str, Any] = {}
    if gen.shape is not None:
        out["shape"] = list(gen.shape)
    if gen.low is not None:
        out["range"] = [gen.low, gen.high]
    if gen.value is not None:
        out["value"] = gen.value
    if gen.distribution != "uniform":
        out["distribution"] = gen.distribution
    if gen.distribution == "normal":
        out.update(mean=gen.mean, std=gen.std)
    if gen.distribution == "zipf":
        out["a"] = gen.a
    if gen.strings is not None:
        out["strings"] = list(gen.strings)
    return out


# -- parsing ---------------------------------------------------------------------------------------

Problems = list[tuple[str, str]]  # (key, message)


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_gen(data: Mapping[str, Any], key: str, problems: Problems) -> InputGen | None:
    """One input's generator mapping; problems are appended as (key, message)."""
    allowed = {"shape", "range", "value", "distribution", "mean", "std", "a", "strings"}
    for k in data:
        if k not in allowed:
            problems.append((f"{key}.{k}", f"unknown key; allowed here: {', '.join(sorted(allowed))}"))
    kw: dict[str, Any] = {}
    shape = data.get("shape")
    if shape is not None:
        if (
            not isinstance(shape, list)
            or not shape
            or not all(
                (isinstance(d, int) and not isinstance(d, bool) and d >= 1) or (isinstance(d, str) and d)
                for d in shape
            )
        ):
            problems.append(
                (
                    f"{key}.shape",
                    f"expected a list of dimensions (numbers >= 1, or names of "
                    f"input_data.dims), no batch dimension; got {shape!r}",
                )
            )
        else:
            kw["shape"] = tuple(shape)
    if "range" in data:
        rng = data["range"]
        if not isinstance(rng, list) or len(rng) != 2 or not all(_num(v) for v in rng) or rng[0] > rng[1]:
            problems.append(
                (f"{key}.range", f"expected [low, high] with low <= high (both inclusive), got {rng!r}")
            )
        else:
            kw["low"], kw["high"] = rng
    if "value" in data:
        if not _num(data["value"]):
            problems.append((f"{key}.value", f"expected a number, got {data['value']!r}"))
        else:
            kw["value"] = data["value"]
    dist = data.get("distribution", "uniform")
    if dist not in DISTRIBUTIONS:
        problems.append((f"{key}.distribution", f"expected one of {', '.join(DISTRIBUTIONS)}, got {dist!r}"))
    else:
        kw["distribution"] = dist
    for name, minimum in (("mean", None), ("std", 0.0), ("a", 1.0)):
        if name in data:
            v = data[name]
            if not _num(v) or (minimum is not None and v <= minimum):
                problems.append(
                    (
                        f"{key}.{name}",
                        f"expected a number{'' if minimum is None else f' > {minimum:g}'}, got {v!r}",
                    )
                )
            else:
                kw[name] = v
    if dist == "zipf" and "range" not in data:
        problems.append((f"{key}.distribution", "zipf draws ranks from a range: give range: [low, high]"))
    if "strings" in data:
        s = data["strings"]
        if not isinstance(s, list) or not s or not all(isinstance(v, str) for v in s):
            problems.append((f"{key}.strings", f"expected a non-empty list of strings, got {s!r}"))
        else:
            kw["strings"] = tuple(s)
    if "value" in kw and ("low" in kw or "strings" in kw):
        problems.append((key, "give one of value, range or strings"))
    return InputGen(**kw)


def parse_input_plan(
    inputs: Mapping[str, Any] | None,
    input_data: Any,
    base_dir: Path | None,
    problems: Problems,
    key: str = "input_data",
) -> tuple[dict[str, list[int]], InputPlan | None]:
    """A spec's `inputs:` and `input_data:` values: the fixed shapes (list form, as before) and
    the plan (None when neither asks for more than random data of fixed shapes)."""
    shapes: dict[str, list[int]] = {}
    gens: dict[str, InputGen] = {}
    for name, value in (inputs or {}).items():
        where = f"inputs.{name}"
        if isinstance(value, list):
            if not value or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in value):
                problems.append(
                    (where, f"expected a list of dimensions >= 1 (no batch dimension), got {value!r}")
                )
            else:
                shapes[str(name)] = list(value)
        elif isinstance(value, Mapping):
            gen = parse_gen(value, where, problems)
            if gen is not None:
                gens[str(name)] = gen
        else:
            problems.append(
                (
                    where,
                    "expected a list of dimensions, or a mapping (shape, range, value, "
                    f"distribution, strings); got {value!r}",
                )
            )
    if input_data is None and not gens:
        return shapes, None
    kw: dict[str, Any] = {"inputs": gens}
    if isinstance(input_data, str):
        input_data = {"file": input_data}
    if input_data is not None and not isinstance(input_data, Mapping):
        problems.append(
            (key, f"expected a file name or a mapping (file, order, requests, dims), got {input_data!r}")
        )
        input_data = None
    data = input_data or {}
    allowed = {"file", "order", "requests", "dims"}
    for k in data:
        if k not in allowed:
            problems.append((f"{key}.{k}", f"unknown key; allowed here: {', '.join(sorted(allowed))}"))
    if "file" in data:
        f = data["file"]
        if not isinstance(f, str) or not f:
            problems.append((f"{key}.file", f"expected a file name, got {f!r}"))
        else:
            path = user_path(f)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            if path.suffix not in DATA_FILE_SUFFIXES:
                problems.append(
                    (
                        f"{key}.file",
                        f"{f}: expected perf_analyzer's JSON format (.json) or numpy files (.npy, .npz)",
                    )
                )
            kw["file"] = path
            if gens or "dims" in data or "requests" in data:
                problems.append(
                    (
                        key,
                        "requests come from the file; leave out generators (inputs: mappings), "
                        "dims and requests",
                    )
                )
    order = data.get("order", "cycle")
    if order not in ORDERS:
        problems.append((f"{key}.order", f"expected one of {', '.join(ORDERS)}, got {order!r}"))
    else:
        kw["order"] = order
    if "requests" in data:
        n = data["requests"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REQUESTS:
            expected = f"a whole number from 1 to {MAX_REQUESTS} (the limit)"
            problems.append((f"{key}.requests", f"expected {expected}, got {n!r}"))
        else:
            kw["requests"] = n
    dims: dict[str, tuple[tuple[int, float], ...]] = {}
    raw_dims = data.get("dims", {})
    if not isinstance(raw_dims, Mapping):
        problems.append(
            (f"{key}.dims", f"expected a mapping of dimension names to lengths, got {raw_dims!r}")
        )
        raw_dims = {}
    for name, mix in raw_dims.items():
        where = f"{key}.dims.{name}"
        if isinstance(mix, int) and not isinstance(mix, bool):
            mix = {mix: 1}
        if (
            not isinstance(mix, Mapping)
            or not mix
            or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 and _num(w) and w > 0
                for k, w in mix.items()
            )
        ):
            problems.append(
                (
                    where,
                    f"expected a length, or lengths with weights such as {{16: 6, 64: 3, 128: 1}} "
                    f"(lengths >= 1, weights > 0); got {mix!r}",
                )
            )
            continue
        dims[str(name)] = tuple((int(k), float(w)) for k, w in mix.items())
    kw["dims"] = dims
    for name, gen in gens.items():
        for d in gen.shape or ():
            if isinstance(d, str) and d not in dims:
                problems.append(
                    (
                        f"inputs.{name}.shape",
                        f"names dimension {d!r}, which input_data.dims does not "
                        f"define (it defines: {', '.join(dims) or 'none'})",
                    )
                )
    return shapes, InputPlan(**kw)


def plan_from_file(path: str | Path, order: str = "cycle") -> InputPlan:
    """`--input-data FILE`: requests from a data file (.json in perf_analyzer's format, .npy,
    .npz), or a YAML file with a sweep spec's `inputs:` and `input_data:` keys (generators).
    Raises InputDataError naming every problem."""
    import yaml

    path = Path(path)
    if path.suffix in DATA_FILE_SUFFIXES:
        return InputPlan(file=path, order=order)
    if path.suffix not in (".yaml", ".yml"):
        raise InputDataError(
            f"--input-data {path}: expected a data file (.json in perf_analyzer's format, .npy, "
            ".npz) or a YAML file of generators (.yaml, with inputs: and input_data:)"
        )
    text = read_text(path, "a request-generator file (YAML)", InputDataError)
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise InputDataError(f"{path}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        raise InputDataError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, Mapping) or not set(data) <= {"inputs", "input_data"} or "inputs" not in data:
        raise InputDataError(
            f"{path}: expected a mapping with inputs: (and optionally input_data:), as in a sweep spec"
        )
    problems: Problems = []
    inputs = data["inputs"] if isinstance(data["inputs"], Mapping) else None
    if inputs is None:
        problems.append(("inputs", f"expected a mapping of input names, got {data['inputs']!r}"))
    input_data = data.get("input_data")
    if isinstance(input_data, Mapping) and "order" not in input_data:
        input_data = {**input_data, "order": order}
    shapes, plan = parse_input_plan(
        inputs, input_data if input_data is not None else {"order": order}, path.resolve().parent, problems
    )
    if problems:
        raise InputDataError(
            f"{path}: invalid input data:\n  " + "\n  ".join(f"key '{k}': {m}" for k, m in problems)
        )
    assert plan is not None
    # A plain list of dimensions is a generator of random data of that shape.
    fixed = {name: InputGen(shape=tuple(dims)) for name, dims in shapes.items()}
    return dataclasses.replace(plan, inputs={**fixed, **plan.inputs})
