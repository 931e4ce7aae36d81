"""Bounded by design, without a server: inputs that gave a Python traceback (a binary spec, data
files that are not UTF-8 or not numpy's format, a 0-d array, a shape that is not a list), and
the limits on a model's space, a schedule and a request set, and on names. Each is met where a
user meets it, through the CLI, and refused before a server starts or is reached: exit 2, a
message that names the file or key, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import expect_error, free_port, write_spec

BINARY = bytes(range(256)) * 4  # NUL bytes and every invalid UTF-8 lead byte


def unreachable() -> str:
    """A URL nothing answers at: a check that happens first never gets there."""
    return f"127.0.0.1:{free_port()}"


def profile_error(*args: str | Path) -> str:
    """`tritune profile` of model identity against an unreachable URL: exit 2, its stderr."""
    return expect_error(2, "profile", "-m", "identity", "--url", unreachable(), "--quiet", *args)


# -- inputs that gave a traceback ------------------------------------------------------------------


def test_a_binary_file_as_the_spec(tmp_path: Path) -> None:
    # Before: UnicodeDecodeError out of Path.read_text.
    spec = tmp_path / "model.onnx"
    spec.write_bytes(BINARY)
    err = expect_error(2, "sweep", spec)
    assert f"{spec}: not UTF-8 text, so not a sweep spec (byte 128 is 0x80)" in err


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_data_file_that_is_not_utf8(tmp_path: Path, suffix: str) -> None:
    # Before: UnicodeDecodeError (sweep: from the preflight; profile: from the data's reader).
    data = tmp_path / f"requests{suffix}"
    data.write_bytes(b"\xff\xfe" + json.dumps({"data": [{"INPUT0": [1.0]}]}).encode("utf-16-le"))
    assert f"{data}: not UTF-8 text, so not" in profile_error("--input-data", data)
    if suffix == ".json":
        spec = write_spec(tmp_path, model="identity", url=unreachable(), input_data=str(data))
        assert f"{data}: not UTF-8 text, so not" in expect_error(2, "sweep", spec)


@pytest.mark.parametrize("content", [b"PK\x03\x04 truncated zip", BINARY, b""])
def test_a_corrupt_npz_file(tmp_path: Path, content: bytes) -> None:
    # Before: zipfile.BadZipFile (and EOFError for an empty file).
    data = tmp_path / "requests.npz"
    data.write_bytes(content)
    spec = write_spec(tmp_path, model="identity", url=unreachable(), input_data=str(data))
    for err in (expect_error(2, "sweep", spec), profile_error("--input-data", data)):
        assert f"cannot read {data}: not a .npz file" in err


def test_a_0d_array(tmp_path: Path) -> None:
    # Before: TypeError ("len() of unsized object"), once the server had said the model's inputs.
    npy, npz = tmp_path / "one.npy", tmp_path / "one.npz"
    np.save(npy, np.array(3.0, dtype=np.float32))
    np.savez(npz, INPUT0=np.array(3.0, dtype=np.float32))
    assert f"{npy}: the array is a single value (0-d)" in profile_error("--input-data", npy)
    assert f"{npz}: array 'INPUT0' is a single value (0-d)" in profile_error("--input-data", npz)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"INPUT0": {"content": [1, 2, 3], "shape": 3}}, "'shape' must be a list of whole numbers, got 3"),
        ({"INPUT0": {"content": [1], "shape": ["a"]}}, "'shape' must be a list of whole numbers, got ['a']"),
        ({"INPUT0": {"content": [1], "shape": [1.5]}}, "'shape' must be a list of whole numbers, got [1.5]"),
        ({"INPUT0": {"content": [1], "shape": [[1]]}}, "'shape' must be a list of whole numbers, got [[1]]"),
    ],
)
def test_a_json_request_of_the_wrong_form(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    # Before: TypeError ("'int' object is not iterable") once the server had said the inputs.
    data = tmp_path / "requests.json"
    data.write_text(json.dumps({"data": [{"INPUT0": [1.0]}, entry]}))
    assert f"{data}: request 1, input 'INPUT0': {message}" in profile_error("--input-data", data)


# -- request data: its limits ------------------------------------------------------------------------


def _npy_header_only(path: Path, shape: tuple[int, ...], dtype: str) -> None:
    """A .npy file whose header says `shape` and `dtype` and that holds no data: the limits must
    refuse it from the header alone (reading the data would take gigabytes)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        )


def test_a_data_file_with_more_requests_than_the_limit(tmp_path: Path) -> None:
    from analyzer.limits import MAX_REQUESTS

    npy = tmp_path / "many.npy"
    np.save(npy, np.zeros((MAX_REQUESTS + 1, 1), np.uint8))
    assert f"{npy}: {MAX_REQUESTS + 1} requests; the limit is {MAX_REQUESTS}" in profile_error(
        "--input-data", npy
    )
    data = tmp_path / "many.json"
    data.write_text(json.dumps({"data": [{"INPUT0": [1.0]}] * (MAX_REQUESTS + 1)}))
    spec = write_spec(tmp_path, model="identity", url=unreachable(), input_data=str(data))
    assert f"{MAX_REQUESTS + 1} requests; the limit is {MAX_REQUESTS}" in expect_error(2, "sweep", spec)


def test_a_data_file_with_more_bytes_than_the_limit(tmp_path: Path) -> None:
    npy = tmp_path / "huge.npy"
    _npy_header_only(npy, (1000, 1_000_000), "<f8")  # 7.5 GiB claimed, none of it there
    assert f"{npy}: 7.5 GiB of request data; the limit is 256.0 MiB" in profile_error("--input-data", npy)
    data = tmp_path / "huge.json"
    with open(data, "wb") as fh:
        fh.truncate(300 * 2**20)  # sparse: 300 MiB long, nothing written
    spec = write_spec(tmp_path, model="identity", url=unreachable(), input_data=str(data))
    assert f"{data}: 300.0 MiB of JSON; the limit is 256.0 MiB" in expect_error(2, "sweep", spec)


# -- a model's space -----------------------------------------------------------------------------------


def test_a_space_of_millions_of_candidates_is_refused_before_anything_is_built(
    tmp_path: Path, model_repo: Path
) -> None:
    # Before: the space (a million queue delays) built 16 million candidates in the
    # preflight (2.3 GB, over a minute), or after the server started with --url.
    million = {"instance_count": [1, 2], "max_batch_size": {"min": 1, "max": 8}}
    million["max_queue_delay_us"] = {"min": 0, "max": 1_000_000}
    wide = {**million, "max_queue_delay_us": {"min": 0, "max": 10_000}}  # each knob fits, not all
    for where in ({"url": unreachable()}, {"model_repository": str(model_repo)}):
        spec = write_spec(tmp_path, model="identity", space=million, **where)
        err = expect_error(2, "sweep", spec, "--out", tmp_path / "out")
        assert "key 'space.max_queue_delay_us': the range has 1000001 values; the limit is 100000" in err
        spec = write_spec(tmp_path, model="identity", space=wide, **where)
        err = expect_error(2, "sweep", spec, "--out", tmp_path / "out")
        assert (
            "key 'space': 160016 candidates (instance_count 2 x max_batch_size 8 x "
            "max_queue_delay_us 10001); the limit is 100000 per model"
        ) in err
    assert not (tmp_path / "out").exists()


def test_a_range_too_long_for_any_space_is_refused_without_building_it(tmp_path: Path) -> None:
    # Before: MemoryError, building the range's tuple while the spec was parsed.
    space = {"max_queue_delay_us": {"min": 0, "max": 10**11}}
    err = expect_error(2, "sweep", write_spec(tmp_path, model="identity", url=unreachable(), space=space))
    assert "key 'space.max_queue_delay_us': the range has 100000000001 values; the limit is 100000" in err


def test_each_model_of_a_pipeline_or_of_targets_has_the_limit_too(tmp_path: Path) -> None:
    wide = {"max_batch_size": {"min": 1, "max": 1000}, "max_queue_delay_us": {"min": 0, "max": 100}}
    spec = write_spec(tmp_path, model="pipeline", url=unreachable(), models={"classifier": wide})
    err = expect_error(2, "sweep", spec)
    assert "key 'models.classifier': 202000 candidates (instance_count 2 x max_batch_size 1000 x" in err
    targets = {"identity": {"space": wide}, "demo_mlp": {}}
    spec = write_spec(tmp_path, url=unreachable(), targets=targets)
    assert "key 'targets.identity.space': 202000 candidates" in expect_error(2, "sweep", spec)


def test_a_space_built_in_code_is_counted_before_its_candidates_are() -> None:
    from analyzer.config.modelconfig import Candidate
    from analyzer.config.space import ModelTraits, check_space
    from analyzer.errors import UsageError
    from analyzer.spec.spec import SpaceSpec

    traits = ModelTraits("m", True, True, Candidate(1, 8, 0, (), "KIND_CPU"))
    space = SpaceSpec(instance_count=(1, 2), max_queue_delay_us=tuple(range(20_000)))
    with pytest.raises(UsageError, match=r"has 120000 candidates \(instance_count 2 x max_batch_size 3 x"):
        check_space(space, traits)


# -- a schedule's length and requests ------------------------------------------------------------------


def test_a_schedule_of_a_day_is_played_on_a_bounded_grid() -> None:
    # Before: ramp:...:86400 integrated its rate on 86.4 million 1 ms steps in every worker
    # (numpy's MemoryError: "Unable to allocate 659. MiB", under a 3 GB address space).
    import tracemalloc

    from analyzer.load.shapes import LoadSpec, parse_schedule, schedule_offsets
    from analyzer.load.split import auto_workers

    day = parse_schedule("ramp:1:10:86400")
    tracemalloc.start()
    try:
        offsets = schedule_offsets(day, "constant")
        workers = auto_workers(LoadSpec("rate", 1.0, schedule=day), cores=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert len(offsets) == 475_200  # one per expected arrival: 5.5/s on average for a day
    assert workers == 1 and offsets[-1] < 86_400


@pytest.mark.parametrize(
    "form, message",
    [
        ("ramp:1:10:86401", "bad schedule 'ramp:1:10:86401': it lasts 86401 s; the limit is 86400 s (a day)"),
        ("step:1,2:50000", "it lasts 100000 s; the limit is 86400 s (a day)"),
        (
            "ramp:100000:100000:86400",
            "--schedule ramp:100000:100000:86400 at --scale 1 would send about 8640000000 requests; "
            "the limit is 20000000 per level",
        ),
    ],
)
def test_a_schedule_too_long_or_too_large_is_refused_before_a_server(form: str, message: str) -> None:
    assert message in profile_error("--schedule", form)


def test_a_steady_rate_too_large_for_its_level_is_refused(tmp_path: Path) -> None:
    # Before: the send times of a level (rate x 22.3 s) were made up front: MemoryError.
    err = profile_error("--rate", "1e9")
    assert "--rate 1e+09 for up to 22.3 s (the warm-up and every window) would send about " in err
    assert "22300000000 requests; the limit is 20000000 per level" in err


def test_a_sweep_schedule_too_large_at_its_largest_scale_is_refused(tmp_path: Path) -> None:
    load = {"schedule": "ramp:1000:1000:3600"}  # 3.6 million requests, at scales up to 64
    err = expect_error(2, "sweep", write_spec(tmp_path, model="identity", url=unreachable(), load=load))
    assert (
        "key 'load.schedule': ramp:1000:1000:3600 at load.max_level 64 (its largest scale) would send "
        "about 230400000 requests; the limit is 20000000 per level (each is a send time and a record in "
        "memory): lower load.max_level to 5.56 or less"
    ) in err
    load = {"mode": "rate", "max_level": 1e7}
    err = expect_error(2, "sweep", write_spec(tmp_path, model="identity", url=unreachable(), load=load))
    assert "key 'load.max_level': a rate level of 1e+07/s for up to 22.3 s" in err


# -- a request set's size ---------------------------------------------------------------------------


def test_a_request_set_too_large_is_refused_before_a_server(tmp_path: Path) -> None:
    # Before: 100 requests of 10 million values each were generated once the server had said the
    # input's dtype (4 GB for FP32), or one request of a --shape of a billion values (MemoryError).
    spec = write_spec(
        tmp_path,
        model="identity",
        url=unreachable(),
        inputs={"INPUT0": {"shape": [10_000_000]}},
        input_data={"requests": 100},
    )
    err = expect_error(2, "sweep", spec)
    assert "the request set would hold at least 953.7 MiB (100 requests of 10000000 values" in err
    assert "the limit is 256.0 MiB" in err
    err = profile_error("--shape", "INPUT0:1000000000")
    assert "the request set would hold at least 953.7 MiB (1 request of 1000000000 values" in err


def test_the_exact_request_set_size_is_checked_before_it_is_built() -> None:
    # Under the floor counted before the server (1 byte a value), over the limit at FP32.
    from analyzer.load.data import InputDataError
    from analyzer.load.inputs import TensorSpec
    from analyzer.load.requests import build_requests

    with pytest.raises(InputDataError, match=r"the request set would hold 381\.5 MiB .* limit is 256\.0 MiB"):
        build_requests(None, [TensorSpec("INPUT0", "FP32", (1, 100_000_000))], batched=True)


# -- names -------------------------------------------------------------------------------------------


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_model_name_that_leaves_the_run_directory_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    # Before: model: ../../x with --url made <out>/../../x-<time>/spec.yaml, outside --out.
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    spec = work / "spec.yaml"
    spec.write_text("model: ../../escaped\nbudget_ms: 10\n")
    before = _tree(tmp_path)
    err = expect_error(2, "sweep", spec, "--url", unreachable(), "--out", work / "out")
    assert "key 'model': '../../escaped' is not a model name: it has a '/'" in err
    assert _tree(tmp_path) == before  # no run directory, anywhere


@pytest.mark.parametrize(
    "name, why",
    [
        ("..", "it is '..'"),
        ("a..b", "it has '..'"),
        ("a\\b", "it has a '\\'"),
        ("a\x00b", "it has a control character"),
        ("tab\there", "it has a control character"),
        ("x" * 201, "it is 201 bytes long; the limit is 200"),
    ],
)
def test_names_follow_tritons_rules(tmp_path: Path, name: str, why: str) -> None:
    spec = write_spec(tmp_path, model=name, url=unreachable())
    assert f"is not a model name: {why}" in expect_error(2, "sweep", spec)


def test_pipeline_target_study_and_profile_names_are_checked_too(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, model="pipeline", url=unreachable(), models={"../up": {}})
    assert "key 'models': '../up' is not a model name: it has a '/'" in expect_error(2, "sweep", spec)
    spec = write_spec(tmp_path, url=unreachable(), targets={"a/b": {}, "c": {}})
    assert "key 'targets': 'a/b' is not a model name: it has a '/'" in expect_error(2, "sweep", spec)
    spec = write_spec(tmp_path, model="identity", url=unreachable())
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    err = expect_error(2, "sweep", spec, "--storage", storage, "--study", "../../s", "--out", tmp_path / "o")
    assert "--study: '../../s' is not a study name: it has a '/'" in err
    assert not (tmp_path / "shared.db").exists() and not (tmp_path / "o").exists()
    err = expect_error(2, "report", "--storage", storage, "--study", "x/..", "--out", tmp_path / "o")
    assert "--study: 'x/..' is not a study name: it has a '/'" in err
    for name, why in (("../x", "it has a '/'"), ("  ", "it is empty")):
        err = expect_error(2, "profile", "-m", name, "--url", unreachable())
        assert f"-m: {name!r} is not a model name: {why}" in err


def test_the_run_store_refuses_a_name_that_is_not_one_directory(tmp_path: Path) -> None:
    # The last line of defence, for callers that skip the spec (the library, a resumed run).
    from analyzer.errors import UsageError
    from analyzer.store.rundir import RunStore

    with pytest.raises(UsageError, match=r"cannot name a run directory: '\.\./x' is not a model name"):
        RunStore.create(tmp_path / "out", "../x")
    with pytest.raises(UsageError, match="'a/b' is not a study name"):
        RunStore.for_study(tmp_path / "out", "m", "a/b")
    assert _tree(tmp_path) == []


# -- sockets ------------------------------------------------------------------------------------------


def test_the_connection_budget_is_the_fd_limit_less_a_reserve_split_over_workers() -> None:
    from analyzer.limits import MAX_CONNECTIONS, connection_budget

    assert connection_budget(1, limit=256) == 192  # a reserve of 64
    assert connection_budget(2, limit=256) == 96
    assert connection_budget(1, limit=1024) == 896  # an eighth
    assert connection_budget(4, limit=2**20) == MAX_CONNECTIONS // 4


def test_the_soft_fd_limit_is_raised_to_the_hard_one() -> None:
    import resource
    import subprocess
    import sys

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512))

    code = "from analyzer.limits import raise_fd_limit; print(raise_fd_limit())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limits, check=True
    )
    assert out.stdout.strip() == "512"


def test_a_level_with_more_in_flight_than_connections_is_client_bound() -> None:
    from analyzer.load.selfcheck import ClientLoad, client_bound_reason
    from analyzer.load.shapes import LoadSpec
    from analyzer.load.workers import _pool_limit

    capped = ClientLoad(2, 0.2, 0.1, 1.0, inflight_limit=192)
    reason = client_bound_reason("concurrency", 1024, capped)
    assert "concurrency 1024 needs 1024 connections over HTTP/1.1" in reason
    assert "leaves room for 192 connections, so at most 192 were in flight" in reason
    assert client_bound_reason("concurrency", 1024, ClientLoad(2, 0.2, 0.1, 1.0)) == ""
    # Two workers with 96 connections each keep 192 of 1024 in flight; 100 fit.
    assert _pool_limit(LoadSpec("concurrency", 1024), [96, 96]) == 192
    assert _pool_limit(LoadSpec("concurrency", 100), [96, 96]) is None
    assert _pool_limit(LoadSpec("concurrency", 100), [None, None]) is None  # gRPC: no cap


def test_a_run_keeps_no_more_in_flight_than_its_slots_and_says_so() -> None:
    import asyncio

    from analyzer.load.generator import LoadRun
    from analyzer.load.shapes import LoadSpec

    async def go(load: LoadSpec) -> tuple[int, int | None, int]:
        inflight = most = 0

        async def infer() -> None:  # a request the server takes 20 ms over
            nonlocal inflight, most
            inflight += 1
            most = max(most, inflight)
            await asyncio.sleep(0.02)
            inflight -= 1

        run = LoadRun(infer, load, max_duration_s=0.3, slots=3)
        run.start()
        await asyncio.sleep(0.3)
        records = await run.stop(1.0)
        return most, run.inflight_limit, len(records)

    most, limit, done = asyncio.run(go(LoadSpec("concurrency", 8)))
    assert most == 3 and limit == 3 and done > 0  # 3 kept in flight, not 8 queued in the client
    most, limit, done = asyncio.run(go(LoadSpec("rate", 1000, arrival="constant")))
    assert most == 3 and limit == 3  # due requests waited for a slot: 1000/s needs 20 at once
    assert done == 300  # every due request ends as a record (sent late, or unfinished)
    _, limit, done = asyncio.run(go(LoadSpec("rate", 10, arrival="constant")))
    assert done == 3 and limit is None  # three requests in all: three slots never held one back
