"""What the load generator sends: a set of prebuilt requests, built from an InputPlan.

Pure: the plan (analyzer.load.input_plan) and the model's request specs in, a RequestSet out.
Everything is checked before any load is sent; bad data raises InputDataError (exit 2) naming the
request, the input and what was expected.

A named dimension takes the same length in every input of one request (ids and mask agree),
and the prebuilt set holds each length in proportion to its weight exactly (largest
remainder), so cycling through it sends the configured mix. A plan with a file reads its
requests from it (analyzer.load.data); no plan at all is one random request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from analyzer.limits import MAX_REQUEST_SET_BYTES
from analyzer.load.clients import RequestSet, Tensors
from analyzer.load.data import InputDataError, read_input_data
from analyzer.load.input_plan import InputGen, InputPlan
from analyzer.load.inputs import DTYPES, TensorSpec, random_tensor, variable_dims_error

GENERATED_REQUESTS = 100  # prebuilt requests when data is generated with a mix or ranges
RANDOM_BYTES_ITEM = 8  # the length of each random BYTES element (analyzer.load.inputs.random_tensor)


def mix_counts(mix: Sequence[tuple[int, float]], n: int) -> list[int]:
    """How many of `n` requests take each length: proportional to the weights, rounded by
    largest remainder so the counts sum to n exactly."""
    total = sum(w for _, w in mix)
    exact = [n * w / total for _, w in mix]
    counts = [math.floor(e) for e in exact]
    order = sorted(range(len(mix)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _values(gen: InputGen, spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """One input's data of `shape` from its generator."""
    dtype = DTYPES[spec.datatype]
    size = int(np.prod(shape))
    if spec.datatype == "BYTES":
        if gen.strings is None:
            return random_tensor(TensorSpec(spec.name, spec.datatype, shape), rng)
        picks = rng.integers(0, len(gen.strings), size=size)
        return np.array([gen.strings[i].encode() for i in picks], dtype=np.object_).reshape(shape)
    integer = spec.datatype.startswith(("INT", "UINT")) or spec.datatype == "BOOL"
    if gen.value is not None:
        return np.full(shape, gen.value, dtype=dtype)
    if gen.distribution == "normal":
        values = rng.normal(gen.mean, gen.std, size=shape)
        if gen.low is not None:
            values = np.clip(values, gen.low, gen.high)
        return (np.rint(values) if integer else values).astype(dtype)
    if gen.low is None or gen.high is None:  # a range sets both
        return random_tensor(TensorSpec(spec.name, spec.datatype, shape), rng)
    if gen.distribution == "zipf":
        lo, hi = math.ceil(gen.low), math.floor(gen.high)
        ranks = np.arange(1, hi - lo + 2, dtype=np.float64)
        p = ranks**-gen.a
        return (lo + rng.choice(len(ranks), size=shape, p=p / p.sum())).astype(dtype)
    if integer:
        return rng.integers(math.ceil(gen.low), math.floor(gen.high), size=shape, endpoint=True).astype(dtype)
    return rng.uniform(gen.low, gen.high, size=shape).astype(dtype)


def _check_gen(gen: InputGen, spec: TensorSpec) -> None:
    """Generator settings the input's dtype cannot take (before anything is built)."""
    where = f"inputs.{spec.name}"
    if gen.strings is not None and spec.datatype != "BYTES":
        raise InputDataError(f"{where}: strings are for BYTES inputs; {spec.name!r} is {spec.datatype}")
    if spec.datatype == "BYTES" and (
        gen.low is not None or gen.value is not None or gen.distribution != "uniform"
    ):
        raise InputDataError(f"{where}: {spec.name!r} is BYTES; give strings: [...] instead of numbers")
    if spec.datatype.startswith(("INT", "UINT")):
        info = np.iinfo(DTYPES[spec.datatype])
        for label, v in (("range", gen.low), ("range", gen.high), ("value", gen.value)):
            if v is not None and not info.min <= v <= info.max:
                raise InputDataError(
                    f"{where}.{label}: {v:g} does not fit {spec.datatype} ({info.min}..{info.max})"
                )


def _shape_for(
    gen: InputGen | None, spec: TensorSpec, batched: bool, lengths: Mapping[str, int]
) -> tuple[int, ...]:
    """The concrete full shape of one input in one request (batch dimension first if batched)."""
    model = spec.shape[1:] if batched else spec.shape
    batch = spec.shape[:1] if batched else ()
    if gen is None or gen.shape is None:
        dims = model
    else:
        dims = tuple(lengths[d] if isinstance(d, str) else d for d in gen.shape)
        if len(dims) != len(model) or any(m != -1 and m != d for m, d in zip(model, dims)):
            raise InputDataError(
                f"inputs.{spec.name}.shape: {list(gen.shape)} does not fit the shape of input "
                f"{spec.name!r}, {list(model)} (batch dimension excluded; -1 is free)"
            )
    if any(d == -1 for d in dims):
        raise variable_dims_error(spec.name, model)
    return tuple(batch) + tuple(dims)


def _set_problem(total_bytes: float, requests: int, values: float, floor: bool) -> str:
    """'' when a request set of `total_bytes` fits MAX_REQUEST_SET_BYTES, else the problem."""
    if total_bytes <= MAX_REQUEST_SET_BYTES:
        return ""
    per = values / max(1, requests)
    return (
        f"the request set would hold {'at least ' if floor else ''}{_mib(total_bytes)} ({requests} "
        f"request{'s' if requests != 1 else ''} of {per:.0f} values on average); the limit is "
        f"{_mib(MAX_REQUEST_SET_BYTES)}"
    )


def _mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


SET_HINT = (
    "fewer distinct requests (input_data.requests) or smaller shapes: cycling a sample sends the same mix"
)


def planned_requests(plan: InputPlan | None) -> int:
    """How many distinct requests a plan without a data file builds."""
    return 1 if plan is None or not plan.generated else (plan.requests or GENERATED_REQUESTS)


def request_set_floor(plan: InputPlan | None, shapes: Mapping[str, Sequence[int]]) -> None:
    """Refuse, before any model is known, a request set that is surely over
    MAX_REQUEST_SET_BYTES: its requests times the values of every input whose shape is given
    (a generator's shape, with each named dimension's lengths in their exact proportions, or a
    fixed shape from `shapes`), at one byte a value (the dtype is the model's). InputDataError
    naming the size and the limit; build_requests checks the exact size later."""
    if plan is not None and plan.file is not None:
        return  # a data file's size is checked when it is read
    n = planned_requests(plan)
    gens = dict(plan.inputs) if plan is not None else {}
    dims = dict(plan.dims) if plan is not None else {}
    values = 0.0
    for name, fixed in shapes.items():
        if name not in gens or gens[name].shape is None:
            values += n * math.prod(fixed)
    for gen in gens.values():
        if gen.shape is None:
            continue
        named = [d for d in gen.shape if isinstance(d, str)]
        fixed_part = math.prod(d for d in gen.shape if isinstance(d, int))
        if len(named) == 1 and named[0] in dims:  # exact: each length in its share of the n
            mix = dims[named[0]]
            values += fixed_part * sum(length * count for (length, _), count in zip(mix, mix_counts(mix, n)))
        else:  # several named dimensions are shuffled apart: the shortest of each, a floor
            shortest = [min(length for length, _ in dims.get(d, ((1, 1.0),))) for d in named]
            values += n * fixed_part * math.prod(shortest)
    problem = _set_problem(values, n, values, floor=True)
    if problem:
        raise InputDataError(problem, hint=SET_HINT)


def _item_bytes(gen: InputGen | None, spec: TensorSpec) -> int:
    """Bytes of one element of an input as sent (a BYTES element: its length prefix and data)."""
    if spec.datatype != "BYTES":
        return int(np.dtype(DTYPES[spec.datatype]).itemsize)
    if gen is not None and gen.strings is not None:
        return 4 + max(len(s.encode()) for s in gen.strings)
    return 4 + RANDOM_BYTES_ITEM


def build_requests(
    plan: InputPlan | None, specs: Sequence[TensorSpec], batched: bool, seed: int = 0
) -> RequestSet:
    """The requests to send: read from the plan's file, or generated (one random request when
    there is no plan). Raises InputDataError/ShapeError before anything is sent."""
    rng = np.random.default_rng(seed)
    order = plan.order if plan is not None else "cycle"
    if plan is not None and plan.file is not None:
        rows = read_input_data(plan.file, specs)
        requests: list[Tensors] = [
            [(TensorSpec(s.name, s.datatype, tuple(row[s.name].shape)), row[s.name]) for s in specs]
            for row in rows
        ]
        return RequestSet(tuple(requests), order, seed)
    gens = dict(plan.inputs) if plan is not None else {}
    unknown = [name for name in gens if name not in {s.name for s in specs}]
    if unknown:
        raise InputDataError(
            f"inputs.{unknown[0]}: the model has no input {unknown[0]!r}; its inputs are: "
            + ", ".join(s.name for s in specs)
        )
    for spec in specs:
        if spec.name in gens:
            _check_gen(gens[spec.name], spec)
    n = 1 if plan is None or not plan.generated else (plan.requests or GENERATED_REQUESTS)
    # Each named dimension: its lengths in exact proportion over the n requests, shuffled.
    per_request: list[dict[str, int]] = [{} for _ in range(n)]
    for name, mix in (plan.dims if plan is not None else {}).items():
        column = np.repeat([length for length, _ in mix], mix_counts(mix, n))
        rng.shuffle(column)
        for i in range(n):
            per_request[i][name] = int(column[i])
    # Every request's shapes first: the set's exact size is checked before any data is made.
    shaped = [
        [(spec, _shape_for(gens.get(spec.name), spec, batched, lengths)) for spec in specs]
        for lengths in per_request
    ]
    values = sum(math.prod(shape) for request in shaped for _, shape in request)
    total = sum(
        math.prod(shape) * _item_bytes(gens.get(s.name), s) for request in shaped for s, shape in request
    )
    problem = _set_problem(total, n, values, floor=False)
    if problem:
        raise InputDataError(problem, hint=SET_HINT)
    requests = []
    for request in shaped:
        tensors: Tensors = []
        for spec, shape in request:
            gen = gens.get(spec.name)
            concrete = TensorSpec(spec.name, spec.datatype, shape)
            data = _values(gen, concrete, shape, rng) if gen is not None else random_tensor(concrete, rng)
            tensors.append((concrete, data))
        requests.append(tensors)
    return RequestSet(tuple(requests), order, seed)
