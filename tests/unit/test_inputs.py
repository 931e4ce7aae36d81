"""Request tensors from model metadata, and the errors for bad shapes."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.errors import ShapeError
from analyzer.load.inputs import TensorSpec, parse_shape_args, random_tensor, request_specs

BATCHED = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 256]}]}
VARIABLE = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, -1]}]}
NOBATCH = {
    "inputs": [
        {"name": "COUNT", "datatype": "INT32", "shape": [3]},
        {"name": "TEXT", "datatype": "BYTES", "shape": [2]},
    ]
}


def test_batched_model_gets_batch_dimension() -> None:
    assert request_specs(BATCHED, 32) == [TensorSpec("INPUT0", "FP32", (1, 256))]
    assert request_specs(BATCHED, 32, batch_size=4)[0].shape == (4, 256)


def test_unbatched_model_has_no_batch_dimension() -> None:
    specs = request_specs(NOBATCH, 0)
    assert [s.shape for s in specs] == [(3,), (2,)]


def test_variable_dims_need_a_shape() -> None:
    with pytest.raises(ShapeError, match=r"variable dimensions.*") as info:
        request_specs(VARIABLE, 8)
    assert "--shape INPUT0:16" in str(info.value)
    assert request_specs(VARIABLE, 8, {"INPUT0": [64]})[0].shape == (1, 64)


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ShapeError, match="does not have; its inputs are: INPUT0"):
        request_specs(BATCHED, 8, {"INPUT9": [4]})
    with pytest.raises(ShapeError, match="has 2 dimensions but input 'INPUT0' has 1"):
        request_specs(BATCHED, 8, {"INPUT0": [4, 4]})
    with pytest.raises(ShapeError, match="fixed shape"):
        request_specs(BATCHED, 8, {"INPUT0": [128]})


def test_parse_shape_args() -> None:
    assert parse_shape_args(["INPUT0:1,2", "B:7"]) == {"INPUT0": [1, 2], "B": [7]}
    for bad in ("INPUT0", "INPUT0:", "INPUT0:a,b", "INPUT0:0", ":4"):
        with pytest.raises(ShapeError):
            parse_shape_args([bad])


def test_random_tensors_have_dtype_and_shape() -> None:
    rng = np.random.default_rng(0)
    for dt, np_dt in (("FP32", np.float32), ("INT64", np.int64), ("BOOL", np.bool_), ("FP16", np.float16)):
        t = random_tensor(TensorSpec("x", dt, (2, 3)), rng)
        assert t.dtype == np_dt and t.shape == (2, 3)
    b = random_tensor(TensorSpec("s", "BYTES", (2,)), rng)
    assert b.dtype == object and all(isinstance(v, bytes) for v in b)
