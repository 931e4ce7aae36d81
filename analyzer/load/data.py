"""Real request data: perf_analyzer's `--input-data` JSON files and numpy files, checked against
the model's inputs before any load is sent.

Pure: a file and the model's request specs in, a list of requests (one {input: array} each)
out, or an InputDataError that names the request index, the input and what was expected.

perf_analyzer's format: {"data": [request, ...]}, where a request maps each input name to a
flat list of values (the input's shape), to {"content": [...], "shape": [...]}, or to
{"b64": "..."} (raw little-endian bytes of the tensor). BYTES inputs take strings. A .npz file
holds one array per input, the first dimension indexing requests; a .npy file is one such array
for a model with a single input.
"""

from __future__ import annotations

import base64
import binascii
import json
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.errors import UsageError
from analyzer.limits import MAX_DATA_FILE_BYTES, MAX_REQUEST_SET_BYTES, MAX_REQUESTS
from analyzer.load.inputs import DTYPES, TensorSpec
from analyzer.textfile import read_text

Request = dict[str, np.ndarray]


class InputDataError(UsageError):
    """Request data that does not fit the model (exit code 2, nothing sent)."""


def _where(source: str, index: int, name: str) -> str:
    return f"{source}: request {index}, input {name!r}"


def _expected(spec: TensorSpec) -> str:
    return f"{spec.datatype} of shape {list(spec.shape)}"


def _variable(spec: TensorSpec) -> bool:
    return any(d == -1 for d in spec.shape)


def _shape_list(value: Any, where: str) -> tuple[int, ...]:
    """A request's 'shape' in a data file: a list of whole numbers."""
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in value
    ):
        raise InputDataError(f"{where}: 'shape' must be a list of whole numbers, got {value!r}")
    return tuple(int(d) for d in value)


def _full_shape(given: Sequence[int], spec: TensorSpec, where: str) -> tuple[int, ...] | None:
    """A request's full shape from data's shape (with or without the batch dimension, as
    perf_analyzer leaves it out), matched against the spec's (-1 = any length); None if it
    does not fit."""
    given = _shape_list(given, where)
    if len(given) == len(spec.shape) - 1 and spec.shape and spec.shape[0] == 1:
        given = (1, *given)
    if len(given) != len(spec.shape) or any(s != -1 and s != g for s, g in zip(spec.shape, given)):
        return None
    if any(g < 0 for g in given):
        raise InputDataError(f"{where}: shape {list(given)} has a negative dimension")
    return given


def _as_tensor(value: Any, spec: TensorSpec, where: str) -> np.ndarray:
    """One input of one request as an array of the spec's dtype and a shape that fits it."""
    shape: tuple[int, ...] | None = None if _variable(spec) else spec.shape
    if isinstance(value, Mapping):
        if "shape" in value:
            shape = _full_shape(value["shape"], spec, where)
            if shape is None:
                raise InputDataError(
                    f"{where}: shape {list(value['shape'])} does not match the expected {_expected(spec)}"
                )
        if shape is None:
            raise InputDataError(
                f"{where}: the input has variable dimensions {list(spec.shape)}; give its 'shape' "
                "beside 'content' or 'b64'"
            )
        if "b64" in value:
            if spec.datatype == "BYTES":
                raise InputDataError(f"{where}: b64 content for a BYTES input; give the strings instead")
            try:
                raw = base64.b64decode(str(value["b64"]), validate=True)
            except (binascii.Error, ValueError):
                raise InputDataError(f"{where}: 'b64' is not valid base64") from None
            dtype = np.dtype(DTYPES[spec.datatype]).newbyteorder("<")
            if len(raw) != dtype.itemsize * int(np.prod(shape)):
                raise InputDataError(
                    f"{where}: b64 holds {len(raw)} bytes, expected {dtype.itemsize * int(np.prod(shape))} "
                    f"for {spec.datatype} of shape {list(shape)}"
                )
            return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(DTYPES[spec.datatype])
        if "content" not in value:
            raise InputDataError(f"{where}: expected a list of values, or 'content' (with 'shape') or 'b64'")
        value = value["content"]
    if spec.datatype == "BYTES":
        flat = np.array(value, dtype=object).reshape(-1)
        bad = [v for v in flat if not isinstance(v, (str, bytes))]
        if bad:
            raise InputDataError(f"{where}: a BYTES input takes strings, got {type(bad[0]).__name__}")
        items = [v.encode() if isinstance(v, str) else v for v in flat]
        if shape is None:
            shape = _full_shape(np.shape(value), spec, where)
            if shape is None:
                raise InputDataError(
                    f"{where}: shape {list(np.shape(value))} does not match the expected {_expected(spec)}"
                )
        if len(items) != int(np.prod(shape)):
            raise InputDataError(
                f"{where}: {len(items)} values, expected {int(np.prod(shape))} for "
                f"{spec.datatype} of shape {list(shape)}"
            )
        return np.array(items, dtype=np.object_).reshape(shape)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise InputDataError(f"{where}: values are not a rectangular list of numbers") from None
    if array.dtype == object or array.dtype.kind in "USV":
        kind = "strings" if array.dtype.kind == "U" else str(array.dtype)
        raise InputDataError(f"{where}: values must be numbers for {_expected(spec)}, got {kind}")
    return _fit(array, spec, where, shape)


def _fit(array: np.ndarray, spec: TensorSpec, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """An array cast to the spec's dtype and reshaped to its shape (or to `shape`, or, for an
    input with variable dimensions, kept in its own shape if that fits), or a clear error."""
    target = np.dtype(DTYPES[spec.datatype])
    if spec.datatype == "BYTES":
        if array.dtype.kind not in "SUO":
            raise InputDataError(f"{where}: a BYTES input takes strings or bytes, got {array.dtype} values")
        if array.dtype.kind == "U":
            array = np.char.encode(array, "utf-8")
    elif array.dtype.kind not in "biuf":  # strings, complex numbers, dates, records: not a tensor
        raise InputDataError(f"{where}: values must be numbers for {_expected(spec)}, got {array.dtype}")
    if (
        array.dtype.kind == "f"
        and target.kind in "iub"
        and not np.all(np.isfinite(array) & (array == np.round(array)))
    ):
        raise InputDataError(f"{where}: values are not whole numbers, expected {_expected(spec)}")
    if target.kind in "iu" and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise InputDataError(f"{where}: values {array.min()}..{array.max()} do not fit {spec.datatype}")
    if shape is None and _variable(spec):
        shape = _full_shape(array.shape, spec, where)
        if shape is None:
            raise InputDataError(
                f"{where}: shape {list(array.shape)} does not match the expected {_expected(spec)} "
                "(-1 is any length)"
            )
        return array.astype(target).reshape(shape)
    shape = shape or spec.shape
    if array.size != int(np.prod(shape)):
        raise InputDataError(
            f"{where}: shape {list(array.shape)} ({array.size} values), expected "
            f"{spec.datatype} of shape {list(shape)}"
        )
    if array.ndim > 1 and tuple(array.shape) not in (tuple(shape), tuple(shape[1:])):
        raise InputDataError(
            f"{where}: shape {list(array.shape)} does not match the expected {_expected(spec)}"
        )
    return array.astype(target).reshape(shape)


def read_data_file(path: str | Path) -> Any:
    """A data file read and parsed, before any model is known (a sweep checks it before its
    server starts): a .npy file's array, a .npz file's arrays by name, or a JSON file's requests
    (perf_analyzer's "data" list, each request's form checked). InputDataError when it cannot be
    read, is not that format, or holds more than the limits (analyzer.limits: MAX_REQUESTS
    requests, MAX_REQUEST_SET_BYTES of arrays, MAX_DATA_FILE_BYTES of JSON): the sizes are read
    from the arrays' headers and the file's length, before the data."""
    path = Path(path)
    source = str(path)
    if path.suffix == ".npy":
        return _read_npy(path)
    if path.suffix == ".npz":
        return _read_npz(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputDataError(f"cannot read {source}: {exc.strerror}") from None
    if size > MAX_DATA_FILE_BYTES:
        raise InputDataError(
            f"{source}: {_mib(size)} of JSON; the limit is {_mib(MAX_DATA_FILE_BYTES)}",
            hint="send fewer requests, or give them as a .npz file (its limit is on the arrays' bytes)",
        )
    text = read_text(path, "perf_analyzer's JSON request data", InputDataError, MAX_DATA_FILE_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{source}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputDataError(f"{source}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list) or not data["data"]:
        raise InputDataError(
            f'{source}: expected perf_analyzer\'s format, {{"data": [request, ...]}} with at least one '
            "request"
        )
    _check_count(source, len(data["data"]))
    for i, entry in enumerate(data["data"]):
        if not isinstance(entry, Mapping):
            raise InputDataError(f"{source}: request {i} is not a mapping of input names to values")
        for name, value in entry.items():
            if isinstance(value, Mapping) and "shape" in value:
                _shape_list(value["shape"], _where(source, i, str(name)))
    return data["data"]


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size < 2**30 else f"{size / 2**30:.1f} GiB"


def _check_count(source: str, count: int) -> None:
    if count > MAX_REQUESTS:
        raise InputDataError(
            f"{source}: {count} requests; the limit is {MAX_REQUESTS} distinct requests",
            hint="keep a representative sample: cycling through it sends the same mix",
        )


def _check_arrays(source: str, arrays: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Arrays' shapes and dtypes (from their headers) as request data: one axis at least (the
    requests), within the limits on requests and bytes."""
    total = 0
    for name, (shape, dtype) in arrays.items():
        what = "the array" if name == "" else f"array {name!r}"
        if len(shape) == 0:
            raise InputDataError(
                f"{source}: {what} is a single value (0-d); its first axis must index the requests",
                hint="save one row per request, e.g. np.save(path, values[np.newaxis]) for a single one",
            )
        if dtype.hasobject:
            raise InputDataError(f"{source}: {what} holds Python objects; save numbers or fixed-width bytes")
        _check_count(source, shape[0])
        total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if total > MAX_REQUEST_SET_BYTES:
        raise InputDataError(
            f"{source}: {_mib(total)} of request data; the limit is {_mib(MAX_REQUEST_SET_BYTES)}",
            hint="keep fewer requests: cycling through a representative sample sends the same mix",
        )


def _read_npy(path: Path) -> np.ndarray:
    """A .npy file's array, its header checked before its data is read."""
    try:
        with open(path, "rb") as fh:
            _check_arrays(str(path), {"": _npy_header(fh)})
        return np.load(path, allow_pickle=False)
    except InputDataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise InputDataError(f"cannot read {path}: not a .npy file ({_reason(exc)})") from None


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype in a .npy header (the data after it is not read)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(shape), dtype


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """A .npz file's arrays by name, each member's header checked before any data is read."""
    source = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for member in archive.namelist():
                name = member[:-4] if member.endswith(".npy") else member
                with archive.open(member) as fh:
                    headers[name] = _npy_header(fh)
            _check_arrays(source, headers)
            with np.load(path, allow_pickle=False) as loaded:
                return {name: loaded[name] for name in loaded.files}
    except InputDataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise InputDataError(f"cannot read {source}: not a .npz file ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    """An exception's message, short (numpy's can run to a paragraph)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def read_input_data(path: str | Path, specs: Sequence[TensorSpec]) -> list[Request]:
    """Every request in a data file, checked against the model's inputs (InputDataError names
    the first problem: an unreadable file, a missing or unknown input, a wrong dtype or shape)."""
    path = Path(path)
    source = str(path)
    by_name = {s.name: s for s in specs}
    loaded = read_data_file(path)
    if path.suffix in (".npy", ".npz"):
        if isinstance(loaded, np.ndarray):
            if len(specs) != 1:
                raise InputDataError(
                    f"{source}: a .npy file holds one input, but the model has {len(specs)}: "
                    + ", ".join(by_name),
                    hint="use a .npz file with one array per input",
                )
            arrays = {specs[0].name: loaded}
        else:
            arrays = dict(loaded)
        missing = [n for n in by_name if n not in arrays]
        if missing:
            raise InputDataError(
                f"{source}: no data for input {missing[0]!r}; the file has: {', '.join(arrays)}"
            )
        unknown = [n for n in arrays if n not in by_name]
        if unknown:
            raise InputDataError(
                f"{source}: the model has no input {unknown[0]!r}; its inputs are: {', '.join(by_name)}"
            )
        counts = {n: len(a) for n, a in arrays.items()}
        if len(set(counts.values())) != 1:
            raise InputDataError(f"{source}: the inputs hold different numbers of requests: {counts}")
        return [
            {n: _fit(np.asarray(arrays[n][i]), by_name[n], _where(source, i, n)) for n in by_name}
            for i in range(next(iter(counts.values())))
        ]
    requests: list[Request] = []
    for i, entry in enumerate(loaded):  # each a mapping, its shapes lists (read_data_file checked)
        for name in entry:
            if name not in by_name:
                raise InputDataError(
                    f"{source}: request {i} names input {name!r}, which the model does not have; "
                    f"its inputs are: {', '.join(by_name)}"
                )
        request = {}
        for name, spec in by_name.items():
            if name not in entry:
                raise InputDataError(f"{_where(source, i, name)}: missing (expected {_expected(spec)})")
            request[name] = _as_tensor(entry[name], spec, _where(source, i, name))
        requests.append(request)
    return requests
