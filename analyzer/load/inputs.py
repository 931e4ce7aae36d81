"""Request tensors for a model: shapes from its metadata and config, random data of each dtype.

Pure: takes the metadata dict the server returns and the user's `--shape` overrides, returns
numpy arrays. Variable dimensions (-1) must be given by the user; errors say which and how.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analyzer.errors import ShapeError, UsageError

# Triton datatype -> numpy dtype (BYTES is an object array of bytes).
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@dataclass(frozen=True)
class TensorSpec:
    """One input of a request: its name, Triton datatype and full shape (batch dim included)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def parse_shape_args(values: Iterable[str]) -> dict[str, list[int]]:
    """Parse `--shape NAME:d1,d2` options into {NAME: [d1, d2]} (batch dimension excluded)."""
    shapes: dict[str, list[int]] = {}
    for value in values:
        name, sep, dims_text = value.rpartition(":")
        if not sep or not name:
            raise ShapeError(
                f"--shape {value!r} is not NAME:d1,d2,...",
                hint="for example --shape INPUT0:256 (dimensions without the batch dimension)",
            )
        try:
            dims = [int(d) for d in dims_text.split(",") if d.strip()]
        except ValueError:
            raise ShapeError(f"--shape {value!r}: dimensions must be whole numbers") from None
        if not dims or any(d <= 0 for d in dims):
            raise ShapeError(f"--shape {value!r}: give one or more dimensions, each > 0")
        shapes[name] = dims
    return shapes


def request_specs(
    metadata: Mapping[str, Any],
    max_batch_size: int,
    shapes: Mapping[str, list[int]] | None = None,
    batch_size: int = 1,
    variable_ok: bool = False,
) -> list[TensorSpec]:
    """The tensors one request carries, from model metadata, config and user shapes.

    metadata["inputs"] lists {name, datatype, shape}; when the model batches (max_batch_size > 0)
    the first dimension is the batch, filled with `batch_size`. Variable dimensions (-1) left
    without a shape are an error, unless `variable_ok` (request data fills them in later).
    """
    shapes = dict(shapes or {})
    inputs = list(metadata.get("inputs", []))
    names = [i["name"] for i in inputs]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise ShapeError(
            f"--shape names input {unknown[0]!r}, which the model does not have; its inputs are: "
            + ", ".join(names)
        )
    if max_batch_size > 0 and batch_size > max_batch_size:
        raise UsageError(f"batch size {batch_size} exceeds the model's max_batch_size {max_batch_size}")
    specs: list[TensorSpec] = []
    for inp in inputs:
        name, datatype = inp["name"], inp["datatype"]
        if datatype not in DTYPES:
            raise ShapeError(f"input {name!r} has datatype {datatype}, which tritune cannot generate")
        dims = [int(d) for d in inp.get("shape", [])]
        if max_batch_size > 0:
            dims = dims[1:]  # the metadata's leading -1 is the batch dimension
        if name in shapes:
            given = shapes[name]
            if len(given) != len(dims):
                raise ShapeError(
                    f"--shape {name}:{','.join(map(str, given))} has {len(given)} dimensions but "
                    f"input {name!r} has {len(dims)} (model shape {_fmt(dims)}, batch dimension excluded)"
                )
            for have, want in zip(dims, given):
                if have != -1 and have != want:
                    raise ShapeError(
                        f"--shape {name}:{','.join(map(str, given))} does not match input {name!r}'s "
                        f"fixed shape {_fmt(dims)}",
                        hint="only -1 (variable) dimensions can be chosen",
                    )
            dims = list(given)
        elif any(d == -1 for d in dims) and not variable_ok:
            raise variable_dims_error(name, dims)
        full = ([batch_size] if max_batch_size > 0 else []) + dims
        specs.append(TensorSpec(name, datatype, tuple(full)))
    return specs


def variable_dims_error(name: str, dims: Sequence[int]) -> ShapeError:
    """The error for an input whose variable dimensions (-1, batch excluded) nothing filled in."""
    example = ",".join("16" if d == -1 else str(d) for d in dims)
    return ShapeError(
        f"input {name!r} has variable dimensions {_fmt(list(dims))}; tritune needs concrete ones",
        hint=f"pass --shape {name}:{example}, or give its shape in the sweep spec's `inputs:` "
        "(a name from input_data.dims for a mix of lengths)",
    )


def random_tensor(spec: TensorSpec, rng: np.random.Generator) -> np.ndarray:
    """Random data of the spec's dtype and shape (normal floats, small ints, short bytes)."""
    dtype = DTYPES[spec.datatype]
    if spec.datatype == "BYTES":
        flat = [rng.bytes(8) for _ in range(int(np.prod(spec.shape)))]
        return np.array(flat, dtype=np.object_).reshape(spec.shape)
    if spec.datatype == "BOOL":
        return rng.integers(0, 2, size=spec.shape).astype(np.bool_)
    if spec.datatype.startswith(("INT", "UINT")):
        return rng.integers(0, 100, size=spec.shape).astype(dtype)
    return rng.standard_normal(spec.shape).astype(dtype)


def _fmt(dims: list[int]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"
