"""Real request data on a real server: the tokens model (a 64-token vocabulary) refuses random
ids, accepts a perf_analyzer data file and ranged random data, sees a shape mix in its
configured proportions, and bad data exits 2 before anything is sent."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from click.testing import CliRunner

from analyzer.cli.main import main
from tests.helpers import FAST_LOAD, write_spec

# A short fixed load: 2 levels of 100 req/s for one 0.5 s window each (about 100 requests).
LOAD = [
    "--rate",
    "100",
    "--arrival",
    "constant",
    "--window-s",
    "0.5",
    "--warmup-s",
    "0",
    "--max-windows",
    "3",
    "--format",
    "json",
    "-q",
]


def profile(server: Any, model: str, *args: str) -> Any:
    return CliRunner().invoke(
        main, ["profile", "-m", model, "--url", server.endpoint.url("grpc"), *LOAD, *args]
    )


def inferences(server: Any, model: str) -> int:
    """The server's own count of requests `model` has executed (successful or not)."""
    with grpcclient.InferenceServerClient(server.endpoint.url("grpc")) as client:
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats["inference_stats"]["success"].get("count", 0)) + int(
        stats["inference_stats"]["fail"].get("count", 0)
    )


def lengths_seen(server: Any, since: int) -> Counter[int]:
    """The sequence lengths the tokens model logged after line `since`."""
    lines = (server.log_path.parent / "tokens.log").read_text().splitlines()
    return Counter(int(x) for x in lines[since:])


def log_lines(server: Any) -> int:
    path = server.log_path.parent / "tokens.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_random_ids_are_refused_by_a_model_with_a_vocabulary(triton_server: Any) -> None:
    result = profile(triton_server, "tokens", "--shape", "input_ids:8", "--shape", "attention_mask:8")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] > 0 and row["throughput_rps"] == 0, row
    # Every request refused by the model (its error is Triton's INTERNAL status).
    assert row["error_kinds"] == f"server_internal={row['errors']}", row


def test_a_perf_analyzer_data_file_is_accepted(tmp_path: Path, triton_server: Any) -> None:
    data = {
        "data": [
            {
                "input_ids": {"content": [1, 2, 3, 4], "shape": [4]},
                "attention_mask": {"content": [1, 1, 1, 1], "shape": [4]},
            },
            {
                "input_ids": {
                    "b64": base64.b64encode(np.array([5, 6, 63], "<i8").tobytes()).decode(),
                    "shape": [3],
                },
                "attention_mask": {"content": [1, 1, 0], "shape": [3]},
            },
        ]
    }
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(data))
    before = log_lines(triton_server)
    result = profile(triton_server, "tokens", "--input-data", str(path))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0 and row["requests"] > 20, row
    seen = lengths_seen(triton_server, before)
    # Cycled in turn: both requests, in equal numbers (within one).
    assert set(seen) == {3, 4} and abs(seen[3] - seen[4]) <= 1, seen


def test_ranged_random_data_and_a_shape_mix_reach_the_server_in_proportion(
    tmp_path: Path, triton_server: Any
) -> None:
    gens = tmp_path / "gens.yaml"
    gens.write_text(
        "inputs:\n"
        "  input_ids: {shape: [seq], range: [0, 63]}\n"
        "  attention_mask: {shape: [seq], value: 1}\n"
        "input_data:\n"
        "  dims: {seq: {8: 6, 32: 3, 128: 1}}\n"
        "  requests: 50\n"
    )
    before = log_lines(triton_server)
    result = CliRunner().invoke(
        main,
        [
            "profile",
            "-m",
            "tokens",
            "--url",
            triton_server.endpoint.url("grpc"),
            "--rate",
            "200",
            "--arrival",
            "constant",
            "--window-s",
            "1",
            "--warmup-s",
            "0",
            "--max-windows",
            "3",
            "--format",
            "json",
            "-q",
            "--input-data",
            str(gens),
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0, row
    seen = lengths_seen(triton_server, before)
    total = sum(seen.values())
    assert set(seen) == {8, 32, 128} and total >= 150, seen
    # The prebuilt set holds the lengths in exact proportion and is sent in turn: over whole
    # cycles of 50 the shares are exact, so within a partial cycle's worth of the weights.
    for length, weight in ((8, 0.6), (32, 0.3), (128, 0.1)):
        assert abs(seen[length] - weight * total) <= 50 * weight + 1, (length, seen)


def test_ranged_random_data_works_over_http_and_sampled(tmp_path: Path, triton_server: Any) -> None:
    gens = tmp_path / "gens.yaml"
    gens.write_text(
        "inputs:\n  input_ids: {shape: [16], range: [0, 63], distribution: zipf}\n"
        "  attention_mask: {shape: [16], value: 1}\n"
    )
    result = CliRunner().invoke(
        main,
        [
            "profile",
            "-m",
            "tokens",
            "--url",
            triton_server.endpoint.url("http"),
            "--protocol",
            "http",
            *LOAD,
            "--input-data",
            str(gens),
            "--input-order",
            "sample",
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0 and row["requests"] > 20, row


def _json(tmp_path: Path, data: Any, name: str = "bad.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


GOOD = {"input_ids": {"content": [1, 2], "shape": [2]}, "attention_mask": {"content": [1, 1], "shape": [2]}}


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: _json(
                p,
                {
                    "data": [
                        GOOD,
                        {
                            "input_ids": {"content": [1.5, 2], "shape": [2]},
                            "attention_mask": {"content": [1, 1], "shape": [2]},
                        },
                    ]
                },
            ),
            "request 1, input 'input_ids': values are not whole numbers, expected INT64 of shape [1, -1]",
        ),
        (
            lambda p: _json(
                p,
                {
                    "data": [
                        {
                            "input_ids": {"content": [1, 2, 3], "shape": [2]},
                            "attention_mask": {"content": [1, 1], "shape": [2]},
                        }
                    ]
                },
            ),
            "request 0, input 'input_ids': shape [3] (3 values), expected INT64 of shape [1, 2]",
        ),
        (
            lambda p: _json(
                p,
                {
                    "data": [
                        {
                            "input_ids": {"content": [1, 2], "shape": [2, 1, 1]},
                            "attention_mask": {"content": [1, 1], "shape": [2]},
                        }
                    ]
                },
            ),
            "request 0, input 'input_ids': shape [2, 1, 1] does not match the expected INT64 of shape [1, "
            "-1]",
        ),
        (
            lambda p: _json(p, {"data": [GOOD, {"input_ids": {"content": [1, 2], "shape": [2]}}]}),
            "request 1, input 'attention_mask': missing (expected INT64 of shape [1, -1])",
        ),
        (
            lambda p: _json(
                p,
                {
                    "data": [
                        {
                            "input_ids": {"content": ["a", "b"], "shape": [2]},
                            "attention_mask": {"content": [1, 1], "shape": [2]},
                        }
                    ]
                },
            ),
            "request 0, input 'input_ids': values must be numbers for INT64 of shape [1, -1], got strings",
        ),
        (lambda p: _json(p, "{not json"), "bad.json: not valid JSON"),
        (lambda p: str(p / "missing.json"), "cannot read"),
        (
            lambda p: _json(p, "inputs:\n  input_ids: {shape: [seq], range: [0, 63]}\n", "gens.yaml"),
            "names dimension 'seq', which input_data.dims does not define",
        ),
    ],
)
def test_bad_data_exits_2_and_sends_nothing(
    tmp_path: Path, triton_server: Any, make: Any, message: str
) -> None:
    before = inferences(triton_server, "tokens")
    result = profile(triton_server, "tokens", "--input-data", make(tmp_path))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert inferences(triton_server, "tokens") == before


def _sweep_spec(tmp_path: Path, server: Any, **extra: Any) -> Path:
    return write_spec(
        tmp_path,
        model="tokens",
        url=server.endpoint.url("grpc"),
        budget_ms=200,
        space={"instance_count": [1], "max_batch_size": [4, 8], "max_queue_delay_us": [0]},
        load={**FAST_LOAD, "warmup_s": 0.1, "max_windows": 6, "stability_pct": 40},
        **extra,
    )


def test_a_sweep_sends_the_specs_generated_requests(tmp_path: Path, triton_server: Any) -> None:
    import pandas as pd

    spec = _sweep_spec(
        tmp_path,
        triton_server,
        inputs={
            "input_ids": {"shape": ["seq"], "range": [0, 63]},
            "attention_mask": {"shape": ["seq"], "value": 1},
        },
        input_data={"dims": {"seq": {4: 1, 12: 1}}, "requests": 10},
    )
    before = log_lines(triton_server)
    result = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "out").iterdir()
    levels = pd.read_csv(run / "measurements.csv")
    assert len(levels) >= 2 and (levels["errors"] == 0).all()
    assert set(lengths_seen(triton_server, before)) == {4, 12}


def test_a_sweep_with_bad_data_exits_2_before_measuring(tmp_path: Path, triton_server: Any) -> None:
    (tmp_path / "reqs.json").write_text(json.dumps({"data": [{"input_ids": [1, 2]}]}))
    spec = _sweep_spec(tmp_path, triton_server, input_data="reqs.json")
    before = inferences(triton_server, "tokens")
    result = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert (
        "reqs.json: request 0, input 'attention_mask': missing (expected INT64 of shape [1, -1])"
        in result.output
    )
    assert inferences(triton_server, "tokens") == before


def test_bytes_inputs_from_strings_in_a_file_and_from_a_generator(tmp_path: Path, triton_server: Any) -> None:
    path = tmp_path / "text.json"
    path.write_text(
        json.dumps(
            {
                "data": [
                    {"COUNT": [1, 2, 3], "TEXT": ["héllo", "wörld"]},
                    {"COUNT": {"content": [4, 5, 6], "shape": [3]}, "TEXT": [["a"], ["bc"]]},
                ]
            }
        )
    )
    result = profile(triton_server, "nobatch", "--input-data", str(path))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0 and row["requests"] > 20, row
    gens = tmp_path / "gens.yaml"
    gens.write_text("inputs:\n  COUNT: {range: [0, 9]}\n  TEXT: {strings: [red, green, blue]}\n")
    result = profile(
        triton_server,
        "nobatch",
        "--input-data",
        str(gens),
        "--protocol",
        "http",
        "--url",
        triton_server.endpoint.url("http"),
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0 and row["requests"] > 20, row
    # A number where a string belongs names the request and the input.
    path.write_text(json.dumps({"data": [{"COUNT": [1, 2, 3], "TEXT": ["a", 7]}]}))
    result = profile(triton_server, "nobatch", "--input-data", str(path))
    assert (
        result.exit_code == 2
        and "request 0, input 'TEXT': a BYTES input takes strings, got int" in result.output
    )
