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
from typing import Mapping, Sequence

import numpy as np

from analyzer.load.clients import RequestSet, Tensors
from analyzer.load.data import InputDataError, read_input_data
from analyzer.load.input_plan import InputGen, InputPlan
from analyzer.load.inputs import DTYPES, TensorSpec, random_tensor, variable_dims_error

GENERATED_REQUESTS = 100  # prebuilt requests when data is generated with a mix or ranges


def mix_counts(mix: Sequence[tuple[int, float]], n: int) -> list[int]:
    """How many of `n` requests take each length: proportional to the weights, rounded by
    largest remainder so the counts sum to n exactly."""
    total = sum(w for _, w in mix)
    exact = [n * w / total for _, w in mix]
    counts = [int(math.floor(e)) for e in exact]
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
    if gen.low is None:
        return random_tensor(TensorSpec(spec.name, spec.datatype, shape), rng)
    if gen.distribution == "zipf":
        lo, hi = int(math.ceil(gen.low)), int(math.floor(gen.high))
        ranks = np.arange(1, hi - lo + 2, dtype=np.float64)
        p = ranks**-gen.a
        return (lo + rng.choice(len(ranks), size=shape, p=p / p.sum())).astype(dtype)
    if integer:
        return rng.integers(
            int(math.ceil(gen.low)), int(math.floor(gen.high)), size=shape, endpoint=True
        ).astype(dtype)
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
    requests = []
    for lengths in per_request:
        tensors: Tensors = []
        for spec in specs:
            gen = gens.get(spec.name)
            shape = _shape_for(gen, spec, batched, lengths)
            concrete = TensorSpec(spec.name, spec.datatype, shape)
            data = _values(gen, concrete, shape, rng) if gen is not None else random_tensor(concrete, rng)
            tensors.append((concrete, data))
        requests.append(tensors)
    return RequestSet(tuple(requests), order, seed)
