"""Model configurations: config.pbtxt <-> ModelConfig protobuf <-> the load API's JSON.

Parsing and writing go through tritonclient's `model_config_pb2` with protobuf's `text_format`
and `json_format`, so what we write is exactly what Triton reads. The three tuning knobs are read
and applied here; validity rules live in `analyzer.space`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from analyzer.errors import UsageError

ModelConfig = mc.ModelConfig


def parse_pbtxt(text: str, source: str = "config.pbtxt") -> mc.ModelConfig:
    """Parse config.pbtxt text (raises UsageError naming `source` and the parser's reason)."""
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise UsageError(f"{source}: not a valid model configuration: {exc}") from None
    return config


def read_pbtxt(path: str | Path) -> mc.ModelConfig:
    """Read and parse a config.pbtxt file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return parse_pbtxt(text, str(path))


def to_pbtxt(config: mc.ModelConfig) -> str:
    """config.pbtxt text of a ModelConfig."""
    return text_format.MessageToString(config)


def from_dict(data: Mapping[str, Any]) -> mc.ModelConfig:
    """A ModelConfig from the JSON shape the server's config API returns."""
    config = mc.ModelConfig()
    json_format.ParseDict(dict(data), config, ignore_unknown_fields=True)
    return config


def to_dict(config: mc.ModelConfig) -> dict[str, Any]:
    """The JSON shape the load API takes as a config override."""
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


@dataclass(frozen=True)
class Knobs:
    """The tuned settings of a model config (None = not set in the config)."""

    instance_count: int
    max_batch_size: int
    max_queue_delay_us: int | None  # None: no dynamic batching
    preferred_batch_size: tuple[int, ...] = ()
    instance_kind: str = "KIND_CPU"


def knobs_of(config: mc.ModelConfig | Mapping[str, Any]) -> Knobs:
    """Read the tuned settings from a config (protobuf or its JSON dict)."""
    if not isinstance(config, mc.ModelConfig):
        config = from_dict(config)
    count = sum(max(1, g.count) for g in config.instance_group) if config.instance_group else 1
    kind = mc.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) if config.instance_group else "KIND_AUTO"
    has_db = config.HasField("dynamic_batching")
    return Knobs(
        instance_count=count,
        max_batch_size=int(config.max_batch_size),
        max_queue_delay_us=int(config.dynamic_batching.max_queue_delay_microseconds) if has_db else None,
        preferred_batch_size=tuple(config.dynamic_batching.preferred_batch_size) if has_db else (),
        instance_kind=kind,
    )


def apply_candidate(base: mc.ModelConfig, candidate: Any) -> mc.ModelConfig:
    """A copy of `base` with a candidate's knobs applied (base is not modified).

    Instance groups collapse to one group of the candidate's kind and count. Dynamic batching is
    enabled with the candidate's queue delay (or removed when it has none). Preferred batch sizes
    are the candidate's: a base config's own (or server-filled) sizes would otherwise pin the
    batcher to sizes chosen for another max_batch_size.
    """
    config = mc.ModelConfig()
    config.CopyFrom(base)
    kind = mc.ModelInstanceGroup.Kind.Value(candidate.instance_kind)
    group = mc.ModelInstanceGroup(count=candidate.instance_count, kind=kind)
    if base.instance_group and base.instance_group[0].kind == kind:
        group.gpus.extend(base.instance_group[0].gpus)  # keep the base's GPU pinning for GPU kinds
    del config.instance_group[:]
    config.instance_group.append(group)
    config.max_batch_size = candidate.max_batch_size
    if candidate.max_queue_delay_us is None:
        config.ClearField("dynamic_batching")
    else:
        config.dynamic_batching.max_queue_delay_microseconds = candidate.max_queue_delay_us
        del config.dynamic_batching.preferred_batch_size[:]
        config.dynamic_batching.preferred_batch_size.extend(candidate.preferred_batch_size)
    return config
