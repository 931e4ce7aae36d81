"""Request sets from generators and data files: shape mixes, value ranges, the order they are
sent in, the spec's `inputs:`/`input_data:` keys, and the errors for bad plans."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from analyzer.errors import ShapeError, SpecError
from analyzer.load.clients import RequestSet, as_request_set, picker
from analyzer.load.data import InputDataError
from analyzer.load.input_plan import InputGen, InputPlan, parse_input_plan, plan_from_file
from analyzer.load.inputs import TensorSpec
from analyzer.load.requests import build_requests, mix_counts
from analyzer.spec.spec import parse_spec, spec_from_dict

TOKENS = [TensorSpec("input_ids", "INT64", (1, -1)), TensorSpec("attention_mask", "INT64", (1, -1))]


def plan(inputs: dict, input_data: dict | str | None = None) -> InputPlan:
    problems: list = []
    _, p = parse_input_plan(inputs, input_data, Path("/data"), problems)
    assert problems == []
    assert p is not None
    return p


def test_mix_counts_are_proportional_and_sum_exactly() -> None:
    assert mix_counts([(16, 6), (64, 3), (128, 1)], 100) == [60, 30, 10]
    assert mix_counts([(1, 1), (2, 1), (3, 1)], 10) == [4, 3, 3]
    assert sum(mix_counts([(1, 0.3), (2, 0.7)], 7)) == 7


def test_a_shape_mix_is_shared_by_the_inputs_of_each_request() -> None:
    p = plan(
        {
            "input_ids": {"shape": ["seq"], "range": [0, 30521]},
            "attention_mask": {"shape": ["seq"], "value": 1},
        },
        {"dims": {"seq": {16: 6, 64: 3, 128: 1}}, "requests": 100},
    )
    rs = build_requests(p, TOKENS, batched=True, seed=3)
    assert len(rs.requests) == 100
    lengths = Counter()
    for request in rs.requests:
        (ids_spec, ids), (mask_spec, mask) = request
        assert ids_spec.shape == mask_spec.shape == ids.shape == mask.shape
        assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() <= 30521
        assert (mask == 1).all()
        lengths[ids.shape[1]] += 1
    assert lengths == {16: 60, 64: 30, 128: 10}
    # Shuffled, not in blocks: the first ten requests are not all one length.
    assert len({r[0][1].shape[1] for r in rs.requests[:10]}) > 1


def test_ranges_distributions_and_strings() -> None:
    specs = [
        TensorSpec("ids", "INT32", (1, 4000)),
        TensorSpec("x", "FP32", (1, 4000)),
        TensorSpec("z", "INT64", (1, 4000)),
        TensorSpec("word", "BYTES", (1, 3)),
    ]
    p = plan(
        {
            "ids": {"range": [5, 9]},
            "x": {"distribution": "normal", "mean": 10, "std": 0.5},
            "z": {"distribution": "zipf", "range": [0, 999], "a": 2.0},
            "word": {"strings": ["a", "bc"]},
        }
    )
    (req, *_) = build_requests(p, specs, batched=True).requests
    ids, x, z, word = (t for _, t in req)
    assert ids.dtype == np.int32 and set(np.unique(ids)) == {5, 6, 7, 8, 9}
    assert x.dtype == np.float32 and abs(float(x.mean()) - 10) < 0.1 and abs(float(x.std()) - 0.5) < 0.1
    # zipf with a = 2: rank 1 (value 0) has 1/zeta(2) ~ 61 % of the draws.
    assert 0.55 < float((z == 0).mean()) < 0.67 and z.max() <= 999
    assert word.dtype == object and set(word.ravel()) <= {b"a", b"bc"}


def test_without_a_plan_there_is_one_random_request_as_before() -> None:
    rs = build_requests(None, [TensorSpec("INPUT0", "FP32", (1, 16))], batched=True, seed=0)
    assert len(rs.requests) == 1 and rs.requests[0][0][1].shape == (1, 16)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"input_ids": {"strings": ["a"]}}, "strings are for BYTES inputs; 'input_ids' is INT64"),
        ({"input_ids": {"shape": [4], "range": [0, 2**70]}}, "does not fit INT64"),
        ({"input_ids": {"shape": [4, 4]}}, "[4, 4] does not fit the shape of input 'input_ids', [-1]"),
        (
            {"token_ids": {"shape": [4]}},
            "the model has no input 'token_ids'; its inputs are: input_ids, attention_mask",
        ),
    ],
)
def test_generators_that_do_not_fit_the_model_are_refused(inputs: dict, message: str) -> None:
    with pytest.raises(InputDataError) as exc:
        build_requests(plan(inputs), TOKENS, batched=True)
    assert message in str(exc.value)


def test_a_variable_dimension_nobody_fills_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="input 'attention_mask' has variable dimensions"):
        build_requests(plan({"input_ids": {"shape": [4]}}), TOKENS, batched=True)


def test_a_data_file_with_variable_lengths(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(
        '{"data": [{"input_ids": {"content": [1, 2, 3], "shape": [3]}, "attention_mask": [[1, 1, 1]]},'
        ' {"input_ids": {"content": [4], "shape": [1]}, "attention_mask": {"content": [1], "shape": [1]}}]}'
    )
    rs = build_requests(plan({}, str(path)), TOKENS, batched=True)
    assert [r[0][0].shape for r in rs.requests] == [(1, 3), (1, 1)]
    assert rs.requests[0][1][1].tolist() == [[1, 1, 1]]


@pytest.mark.parametrize(
    "inputs, input_data, message",
    [
        ({"a": {"range": [3, 1]}}, None, "inputs.a.range"),
        ({"a": {"distribution": "poisson"}}, None, "inputs.a.distribution"),
        ({"a": {"distribution": "zipf"}}, None, "zipf draws ranks from a range"),
        ({"a": {"value": 1, "range": [0, 1]}}, None, "give one of value, range or strings"),
        ({"a": {"shape": ["n"]}}, None, "names dimension 'n', which input_data.dims does not define"),
        ({}, {"dims": {"n": {0: 1}}}, "input_data.dims.n"),
        ({}, {"order": "random"}, "input_data.order"),
        ({}, {"file": "d.csv"}, "expected perf_analyzer's JSON format"),
        ({"a": {"value": 1}}, {"file": "d.json"}, "requests come from the file"),
        ({}, {"requests": 0}, "input_data.requests"),
        ({"a": "x"}, None, "expected a list of dimensions, or a mapping"),
    ],
)
def test_bad_plans_name_the_key(inputs: dict, input_data: object, message: str) -> None:
    problems: list = []
    parse_input_plan(inputs, input_data, None, problems)
    assert any(message in f"{k}: {m}" for k, m in problems), problems


def test_the_spec_keys_round_trip_through_the_run_directorys_spec(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    data = {
        "model": "m",
        "model_repository": str(tmp_path / "repo"),
        "inputs": {"INPUT0": [16], "ids": {"shape": ["seq"], "range": [0, 9]}},
        "input_data": {"dims": {"seq": {8: 3, 16: 1}}, "order": "sample", "requests": 40},
    }
    spec = parse_spec(data, "s.yaml", tmp_path)
    assert spec.inputs == {"INPUT0": [16]}
    assert spec.input_data == InputPlan(
        order="sample",
        requests=40,
        inputs={"ids": InputGen(shape=("seq",), low=0, high=9)},
        dims={"seq": ((8, 3.0), (16, 1.0))},
    )
    assert spec_from_dict(spec.to_dict(), "again") == spec.__class__(**{**spec.__dict__, "source": "again"})
    file_spec = parse_spec({**data, "inputs": {}, "input_data": "reqs.json"}, "s.yaml", tmp_path)
    assert file_spec.input_data is not None and file_spec.input_data.file == tmp_path / "reqs.json"
    with pytest.raises(SpecError, match=r"key 'input_data\.order'"):
        parse_spec({**data, "input_data": {"order": "x"}}, "s.yaml", tmp_path)


def test_a_yaml_file_of_generators(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("inputs:\n  INPUT0: [16]\n  ids: {range: [0, 3]}\ninput_data: {requests: 5}\n")
    p = plan_from_file(path, "sample")
    assert p.order == "sample" and p.requests == 5 and p.inputs["INPUT0"] == InputGen(shape=(16,))
    assert plan_from_file(tmp_path / "x.npz").file == tmp_path / "x.npz"
    with pytest.raises(InputDataError, match="expected a data file"):
        plan_from_file(tmp_path / "x.csv")
    path.write_text("inputs:\n  ids: {range: [3, 0]}\n")
    with pytest.raises(InputDataError, match=r"key 'inputs\.ids\.range'"):
        plan_from_file(path)


def test_requests_are_sent_in_turn_or_sampled() -> None:
    nxt = picker(["a", "b", "c"], "cycle", 0)
    assert [nxt() for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]
    sampled = picker(list(range(4)), "sample", 1)
    counts = Counter(sampled() for _ in range(4000))
    assert set(counts) == {0, 1, 2, 3} and all(800 < c < 1200 for c in counts.values())
    assert [picker(list(range(4)), "sample", 1)() for _ in range(1)] == [
        picker(list(range(4)), "sample", 1)()
    ]
    one = picker(["only"], "sample", 0)
    assert one() == one() == "only"
    t = [(TensorSpec("x", "FP32", (1,)), np.zeros(1, np.float32))]
    assert as_request_set(t) == RequestSet((t,))
