"""Fuzzing the parsers a user's files go through, with hypothesis: the sweep spec (as YAML text,
as raw bytes, and as data), the request-data readers (perf_analyzer's JSON, .npy, .npz, YAML
generator files, random bytes under each name, and then the requests built from them for a
model's inputs) and the load schedule. Whatever the input, the result is a value or a
TrituneError (a clear message and its exit code), never another exception.

The examples are derandomized and their number fixed, so CI runs the same inputs every time in
a few seconds; `pytest --hypothesis-show-statistics` shows how many ran. A run with
`HYPOTHESIS_PROFILE=deep` (below) tries far more, for a search away from CI.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analyzer.errors import TrituneError
from analyzer.load.data import read_data_file, read_input_data
from analyzer.load.input_plan import plan_from_file
from analyzer.load.inputs import DTYPES, TensorSpec
from analyzer.load.requests import build_requests, request_set_floor
from analyzer.load.shapes import expected_requests, parse_schedule, schedule_offsets
from analyzer.spec.spec import LOAD_KEYS, SPACE_KEYS, load_spec, parse_spec

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("deep", parent=settings.get_profile("ci"), max_examples=5000, derandomize=False)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# -- values that reach the parsers' edges --------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-3, 70),
    st.integers(),  # huge ones too
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e9, 10**12, 86_400, 86_401, 2**63]),
)
WORDS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "..", "a/b", "x\x00y", "auto", "pow2", "linear", "rate", "concurrency", "KIND_CPU"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, WORDS)


def trees(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[Any] = WORDS) -> st.SearchStrategy[Any]:
    """Nested lists and mappings of `leaves` (what YAML can hold)."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=12,
    )


ANY = trees(SCALARS)
KNOB_VALUES = st.one_of(
    st.lists(NUMBERS, max_size=5),
    st.fixed_dictionaries(
        {"min": NUMBERS, "max": NUMBERS},
        optional={"step": NUMBERS, "scale": st.sampled_from(["pow2", "linear", "log"])},
    ),
    ANY,
)
SPACES = st.dictionaries(st.sampled_from([*sorted(SPACE_KEYS), "bogus"]), KNOB_VALUES, max_size=5)
SCHEDULE_TEXTS = st.one_of(
    st.builds(
        lambda kind, parts: kind + ":" + ":".join(parts),
        st.sampled_from(["ramp", "step", "burst", "daily", "trace", "gaps", "nope"]),
        st.lists(
            st.one_of(
                NUMBERS.map(str), st.lists(NUMBERS.map(str), min_size=1, max_size=3).map(",".join), WORDS
            ),
            max_size=6,
        ),
    ),
    st.text(max_size=30),
)
LOADS = st.dictionaries(
    st.sampled_from([*sorted(LOAD_KEYS), "bogus"]), st.one_of(SCALARS, SCHEDULE_TEXTS), max_size=6
)
GENERATOR = st.dictionaries(
    st.sampled_from(["shape", "range", "value", "distribution", "mean", "std", "a", "strings", "x"]),
    st.one_of(
        SCALARS,
        st.lists(st.one_of(st.integers(-2, 8), st.sampled_from(["seq", "n"]), NUMBERS), max_size=3),
        st.sampled_from(["uniform", "normal", "zipf"]),
    ),
    max_size=5,
)
INPUTS = st.dictionaries(
    st.sampled_from(["INPUT0", "INPUT1", "other"]),
    st.one_of(st.lists(st.integers(-1, 6), max_size=3), GENERATOR, SCALARS),
    max_size=3,
)
INPUT_DATA = st.one_of(
    st.none(),
    WORDS,
    st.dictionaries(
        st.sampled_from(["dims", "requests", "order", "file", "x"]),
        st.one_of(
            SCALARS,
            st.dictionaries(
                st.sampled_from(["seq", "n"]),
                st.one_of(st.integers(-1, 64), st.dictionaries(st.integers(-1, 64), NUMBERS, max_size=3)),
                max_size=2,
            ),
        ),
        max_size=4,
    ),
)
TARGET = st.fixed_dictionaries(
    {}, optional={"share": NUMBERS, "budget_ms": NUMBERS, "space": SPACES, "inputs": INPUTS}
)
SPECS = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(WORDS, SCALARS),
        "url": st.one_of(st.just("localhost:8001"), SCALARS),
        "budget_ms": NUMBERS,
        "percentile": NUMBERS,
        "strategy": st.sampled_from(["grid", "optuna", "nope"]),
        "space": st.one_of(SPACES, ANY),
        "models": st.dictionaries(WORDS, st.one_of(SPACES, st.none(), ANY), max_size=3),
        "targets": st.dictionaries(WORDS, st.one_of(TARGET, ANY), max_size=3),
        "load": st.one_of(LOADS, ANY),
        "inputs": st.one_of(INPUTS, ANY),
        "input_data": INPUT_DATA,
        "max_trials": NUMBERS,
        "confirm_rounds": NUMBERS,
        "bogus": SCALARS,
    },
)


def _yaml_text(data: Any) -> str:
    """`data` as YAML (PyYAML writes whatever these strategies make)."""
    return yaml.safe_dump(data, allow_unicode=True)


def outcome(call: Callable[[], Any]) -> Any:
    """The call's value, or None when it raised a TrituneError; any other exception fails."""
    try:
        return call()
    except TrituneError as exc:
        assert str(exc).strip()  # a message to print
        return None


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory for the generated files (one per module: hypothesis reuses the test function)."""
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


# -- the sweep spec -------------------------------------------------------------------------------


@PROFILE
@given(data=SPECS)
def test_spec_data(data: dict[str, Any]) -> None:
    outcome(lambda: parse_spec(data, "<fuzz>", Path.cwd()))


@PROFILE
@given(data=SPECS)
# Found by this fuzz (each an exception before its fix): a range past a C ssize_t (OverflowError).
@example(data={"targets": {"0": {"space": {"instance_count": {"min": 1, "max": 2**63}}}}})
def test_spec_yaml_files(scratch: Path, data: dict[str, Any]) -> None:
    path = scratch / "spec.yaml"
    path.write_text(_yaml_text(data))
    outcome(lambda: load_spec(path))
    outcome(lambda: load_spec(path, url="localhost:8001"))


@PROFILE
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_spec_bytes(scratch: Path, content: bytes) -> None:
    path = scratch / "spec.yaml"
    path.write_bytes(content)
    outcome(lambda: load_spec(path))


# -- request data ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["INPUT0", "INPUT1", "x"])  # the model's inputs, and one it lacks
# A .npy header that promises data the file does not hold.
NPY_HEADER_ONLY = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,)}"
Model = tuple[list[TensorSpec], bool]


def _model(inputs: list[tuple[str, str, tuple[int, ...]]], batched: bool) -> Model:
    """A model's request specs as analyzer.load.inputs.request_specs makes them (a batching
    model's first dimension is the batch, of 1; -1 marks a variable dimension), and whether it
    batches."""
    return [
        TensorSpec(name, dtype, ((1,) if batched else ()) + dims) for name, dtype, dims in inputs
    ], batched


MODELS = st.builds(
    _model,
    st.lists(
        st.tuples(
            st.sampled_from(["INPUT0", "INPUT1"]),
            st.sampled_from(sorted(DTYPES)),
            st.lists(st.sampled_from([-1, 1, 2, 3]), max_size=3).map(tuple),
        ),
        min_size=1,
        max_size=2,
        unique_by=lambda t: t[0],
    ),
    st.booleans(),
)
VALUES = st.one_of(
    st.lists(st.one_of(NUMBERS, WORDS), max_size=6),
    st.lists(st.lists(NUMBERS, max_size=3), max_size=3),
    st.fixed_dictionaries(
        {},
        optional={
            "content": st.one_of(st.lists(NUMBERS, max_size=6), SCALARS, ANY),
            "shape": st.one_of(st.lists(st.integers(-2, 5), max_size=3), SCALARS, ANY),
            "b64": st.one_of(st.sampled_from(["AAAAAA==", "AAAAAAAAAAA=", "!!", ""]), SCALARS),
        },
    ),
    SCALARS,
)
JSON_DATA = st.one_of(
    st.fixed_dictionaries({"data": st.lists(st.dictionaries(NAMES, VALUES, max_size=2), max_size=3)}), ANY
)


def _array(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """An array of small whole numbers in `dtype` (strings and complex numbers included)."""
    return np.random.default_rng(seed).integers(0, 100, size=shape).astype(dtype)


ARRAYS = st.builds(
    _array,
    st.sampled_from(["<f4", "<f8", "<i8", "<i4", "|u1", "|b1", "<f2", "|S3", "<U2", ">i4", "<c8"]),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.integers(0, 10),
)


def _files_and_requests(path: Path, model: Model) -> None:
    """A data file as a sweep and a profile read it: checked alone, then for the model's inputs;
    and as a profile's --input-data, built into requests."""
    specs, batched = model
    if outcome(lambda: read_data_file(path)) is not None:
        outcome(lambda: read_input_data(path, specs))
    plan = outcome(lambda: plan_from_file(path))
    if plan is not None:
        outcome(lambda: build_requests(plan, specs, batched))


@PROFILE
@given(data=JSON_DATA, model=MODELS)
def test_json_request_files(scratch: Path, data: Any, model: Model) -> None:
    path = scratch / "requests.json"
    path.write_text(json.dumps(data))
    _files_and_requests(path, model)


@PROFILE
@given(arrays=st.dictionaries(NAMES, ARRAYS, max_size=3), model=MODELS)
# Found by this fuzz: bytes for a numeric input (numpy's UFuncTypeError from min()).
@example({"INPUT0": np.array([b"85"], dtype="|S3")}, ([TensorSpec("INPUT0", "INT16", ())], False))
def test_numpy_request_files(scratch: Path, arrays: dict[str, np.ndarray], model: Model) -> None:
    npz = scratch / "requests.npz"
    np.savez(npz, **arrays)
    _files_and_requests(npz, model)
    for array in list(arrays.values())[:1]:
        npy = scratch / "requests.npy"
        np.save(npy, array)
        _files_and_requests(npy, model)


@PROFILE
@given(
    suffix=st.sampled_from([".json", ".npy", ".npz", ".yaml"]),
    content=st.one_of(st.binary(max_size=200), st.sampled_from([b"PK\x03\x04", NPY_HEADER_ONLY])),
    model=MODELS,
)
def test_random_bytes_as_request_files(scratch: Path, suffix: str, content: bytes, model: Model) -> None:
    path = scratch / f"requests{suffix}"
    path.write_bytes(content)
    _files_and_requests(path, model)


@PROFILE
@given(inputs=st.one_of(INPUTS, ANY), input_data=INPUT_DATA, model=MODELS)
# Found by this fuzz: a file named ~0, a home directory that does not exist (RuntimeError).
@example(inputs={}, input_data="~0", model=([TensorSpec("INPUT0", "BOOL", ())], False))
def test_yaml_generator_files(scratch: Path, inputs: Any, input_data: Any, model: Model) -> None:
    specs, batched = model
    path = scratch / "gens.yaml"
    doc: dict[str, Any] = {"inputs": inputs}
    if input_data is not None:
        doc["input_data"] = input_data
    path.write_text(_yaml_text(doc))
    plan = outcome(lambda: plan_from_file(path))
    if plan is not None:
        outcome(lambda: request_set_floor(plan, {}))
        outcome(lambda: build_requests(plan, specs, batched))


# -- the load schedule ----------------------------------------------------------------------------


@PROFILE
@given(text=SCHEDULE_TEXTS, scale=st.floats(0.01, 100), arrival=st.sampled_from(["poisson", "constant"]))
def test_schedules(text: str, scale: float, arrival: str) -> None:
    # parse_schedule's own contract is ValueError (its callers turn that into exit 2, as the
    # spec does below); a schedule it accepts is bounded, and plays without another error.
    try:
        schedule = parse_schedule(text)
    except ValueError as exc:
        assert str(exc)
    else:
        requests = expected_requests(schedule, scale)
        assert np.isfinite(requests) and requests >= 0
        if requests < 200_000:
            offsets = schedule_offsets(schedule, arrival, 0, scale)
            assert np.all(np.isfinite(offsets))
    spec = {"model": "m", "url": "h:1", "load": {"schedule": text}}
    outcome(lambda: parse_spec(spec, "<fuzz>", Path.cwd()))


def test_the_strategies_reach_good_inputs_too(scratch: Path) -> None:
    """Inputs of the forms the strategies make do parse when they are right (a fuzz whose every
    example is refused would exercise one branch only)."""
    good = parse_spec({"model": "m", "url": "h:1", "load": {"schedule": "ramp:1:2:3"}}, "<fuzz>", Path.cwd())
    assert good.load.schedule == "ramp:1:2:3"
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 3), np.float32))
    (scratch / "ok.npy").write_bytes(buf.getvalue())
    assert len(read_input_data(scratch / "ok.npy", [TensorSpec("INPUT0", "FP32", (1, 3))])) == 2
