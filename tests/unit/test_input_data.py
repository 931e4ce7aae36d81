"""Request data files without a server: perf_analyzer's JSON format and numpy files, and a
clear error naming the request, the input and the expectation for every kind of bad data."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from analyzer.load.data import InputDataError, read_input_data
from analyzer.load.inputs import TensorSpec

IDS = TensorSpec("input_ids", "INT64", (1, 4))
MASK = TensorSpec("attention_mask", "INT64", (1, 4))
TEXT = TensorSpec("TEXT", "BYTES", (1, 1))


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return path


def test_perf_analyzer_json_in_all_three_forms(tmp_path: Path) -> None:
    raw = base64.b64encode(np.array([7, 8, 9, 10], dtype="<i8").tobytes()).decode()
    path = write(
        tmp_path,
        {
            "data": [
                {"input_ids": [101, 2023, 2003, 102], "attention_mask": [1, 1, 1, 1]},
                {"input_ids": {"content": [101, 7592, 102, 0], "shape": [4]}, "attention_mask": {"b64": raw}},
            ]
        },
    )
    requests = read_input_data(path, [IDS, MASK])
    assert len(requests) == 2 and requests[0]["input_ids"].dtype == np.int64
    assert requests[0]["input_ids"].shape == (1, 4) and requests[1]["input_ids"].tolist() == [
        [101, 7592, 102, 0]
    ]
    assert requests[1]["attention_mask"].tolist() == [[7, 8, 9, 10]]
    text = read_input_data(write(tmp_path, {"data": [{"TEXT": ["hello"]}, {"TEXT": ["wörld"]}]}), [TEXT])
    assert text[1]["TEXT"].tolist() == [["wörld".encode()]]


def test_numpy_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", input_ids=np.arange(12).reshape(3, 4), attention_mask=np.ones((3, 1, 4)))
    requests = read_input_data(tmp_path / "d.npz", [IDS, MASK])
    assert len(requests) == 3 and requests[2]["input_ids"].tolist() == [[8, 9, 10, 11]]
    assert requests[0]["attention_mask"].dtype == np.int64
    np.save(tmp_path / "d.npy", np.zeros((5, 4), dtype=np.int32))
    assert len(read_input_data(tmp_path / "d.npy", [IDS])) == 5


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"data": [{"input_ids": [1, 2, 3, 4]}]},
            "request 0, input 'attention_mask': missing (expected INT64 of shape [1, 4])",
        ),
        (
            {"data": [{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1, 1]}]},
            "request 0, input 'input_ids': shape [3] (3 values), expected INT64 of shape [1, 4]",
        ),
        (
            {
                "data": [
                    {"input_ids": [1, 2, 3, 4], "attention_mask": [1, 1, 1, 1]},
                    {"input_ids": [0.5, 2, 3, 4], "attention_mask": [1, 1, 1, 1]},
                ]
            },
            "request 1, input 'input_ids': values are not whole numbers, expected INT64 of shape [1, 4]",
        ),
        (
            {"data": [{"input_ids": ["a", "b", "c", "d"], "attention_mask": [1, 1, 1, 1]}]},
            "request 0, input 'input_ids': values must be numbers for INT64 of shape [1, 4], got strings",
        ),
        (
            {
                "data": [
                    {
                        "input_ids": [1, 2, 3, 4],
                        "attention_mask": [1, 1, 1, 1],
                        "token_type_ids": [0, 0, 0, 0],
                    }
                ]
            },
            "request 0 names input 'token_type_ids', which the model does not have",
        ),
        (
            {
                "data": [
                    {"input_ids": {"content": [1, 2, 3, 4], "shape": [2, 2]}, "attention_mask": [1, 1, 1, 1]}
                ]
            },
            "request 0, input 'input_ids': shape [2, 2] does not match the expected INT64 of shape [1, 4]",
        ),
        (
            {"data": [{"input_ids": {"b64": "!!"}, "attention_mask": [1, 1, 1, 1]}]},
            "'b64' is not valid base64",
        ),
        ({"rows": []}, "expected perf_analyzer's format"),
    ],
)
def test_bad_json_data_names_the_request_and_input(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(InputDataError, match=None) as err:
        read_input_data(write(tmp_path, data), [IDS, MASK])
    assert message in str(err.value) and err.value.exit_code == 2


def test_bad_files_and_bytes(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="cannot read"):
        read_input_data(tmp_path / "missing.json", [IDS])
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(InputDataError, match="not valid JSON"):
        read_input_data(tmp_path / "broken.json", [IDS])
    with pytest.raises(InputDataError, match="a BYTES input takes strings, got int"):
        read_input_data(write(tmp_path, {"data": [{"TEXT": [5]}]}), [TEXT])
    np.savez(tmp_path / "d.npz", input_ids=np.zeros((2, 4)), attention_mask=np.zeros((3, 4)))
    with pytest.raises(InputDataError, match="different numbers of requests"):
        read_input_data(tmp_path / "d.npz", [IDS, MASK])
    np.save(tmp_path / "d.npy", np.zeros((2, 4)))
    with pytest.raises(InputDataError, match=r"a \.npy file holds one input, but the model has 2"):
        read_input_data(tmp_path / "d.npy", [IDS, MASK])
    np.save(tmp_path / "big.npy", np.full((1, 4), 300))
    with pytest.raises(InputDataError, match="do not fit INT8"):
        read_input_data(tmp_path / "big.npy", [TensorSpec("x", "INT8", (1, 4))])
