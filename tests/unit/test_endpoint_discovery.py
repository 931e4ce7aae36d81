"""URL parsing, tritonserver discovery and the private backend directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.errors import ServerNotFoundError, UsageError
from analyzer.server.discovery import build_python_backend_dir, find_tritonserver
from analyzer.server.endpoint import Endpoint, parse_url


def test_parse_url_forms() -> None:
    assert parse_url("localhost:8001", "grpc") == Endpoint("localhost", grpc_port=8001)
    assert parse_url("http://10.0.0.5:9000/", "http") == Endpoint("10.0.0.5", http_port=9000)
    assert parse_url("myhost", "grpc").grpc_port == 8001
    assert parse_url("myhost", "http").http_port == 8000
    assert parse_url("[::1]:8001", "grpc").host == "::1"
    assert parse_url("h:1", "grpc", metrics_port=8002).metrics_url() == "http://h:8002/metrics"


@pytest.mark.parametrize("bad", ["", "host:abc", "host:0", "host:70000", "host:1/path"])
def test_parse_url_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_url(bad, "grpc")


def test_endpoint_without_port_for_protocol() -> None:
    with pytest.raises(UsageError, match="no http port"):
        Endpoint("h", grpc_port=1).url("http")


def test_explicit_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFoundError) as info:
        find_tritonserver(tmp_path / "nope")
    assert "no executable tritonserver" in str(info.value)
    assert "pip install 'tritune[server]'" in str(info.value)


def test_nothing_found_names_where_it_looked() -> None:
    with pytest.raises(ServerNotFoundError) as info:
        find_tritonserver(search_path="", use_pytriton=False)
    assert "looked in PATH" in str(info.value)
    assert info.value.exit_code == 2


def _fake_server_root(root: Path, version: str) -> Path:
    (root / "backends" / "python").mkdir(parents=True)
    (root / "backends" / "python" / "libtriton_python.so").write_text("lib")
    (root / "backends" / "python" / "triton_python_backend_utils.py").write_text("utils")
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    stub.parent.mkdir(parents=True)
    stub.write_text("stub")
    return root


def test_backend_dir_links_library_utils_and_matching_stub(tmp_path: Path) -> None:
    import sys

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    root = _fake_server_root(tmp_path / "server", version)
    backends = build_python_backend_dir(root, tmp_path / "cache")
    py = backends / "python"
    assert (py / "libtriton_python.so").resolve() == (root / "backends/python/libtriton_python.so").resolve()
    assert (py / "triton_python_backend_stub").read_text() == "stub"
    # Idempotent, and the source install is untouched.
    assert build_python_backend_dir(root, tmp_path / "cache") == backends
    assert sorted(p.name for p in (root / "backends" / "python").iterdir()) == [
        "libtriton_python.so",
        "triton_python_backend_utils.py",
    ]


def test_backend_dir_without_stub_for_this_python(tmp_path: Path) -> None:
    root = _fake_server_root(tmp_path / "server", "2.7")
    with pytest.raises(ServerNotFoundError, match="no python backend stub"):
        build_python_backend_dir(root, tmp_path / "cache")
