"""Model configurations: config.pbtxt <-> ModelConfig protobuf <-> the load API's JSON.

Parsing and writing go through tritonclient's `model_config_pb2` with protobuf's `text_format`
and `json_format`, so what we write is exactly what Triton reads. The three tuning knobs are read
and applied here; validity rules live in `analyzer.config.space`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# One type for a model's knob values, whether read from a config (knobs_of) or proposed by the
# search (analyzer.config.space): the two were separate classes with the same five fields. A pipeline's
# point (analyzer.config.pipeline.JointCandidate) stays its own type: it is a tuple of these, one per
# tuned model, with a different id, its own params and per-model columns.
@dataclass(frozen=True, order=True)
class Candidate:
    """A model's tuned knob values: a point of the search space, or what a config has (knobs_of)."""

    instance_count: int
    max_batch_size: int
    max_queue_delay_us: int | None  # None: no dynamic batching
    preferred_batch_size: tuple[int, ...] = ()
    instance_kind: str = "KIND_CPU"

    @property
    def config_id(self) -> str:
        """A stable, readable id, e.g. 'i2_b16_d500' (used in tables and the study)."""
        parts = [f"i{self.instance_count}", f"b{self.max_batch_size}"]
        if self.max_queue_delay_us is not None:
            parts.append(f"d{self.max_queue_delay_us}")
        if self.preferred_batch_size:
            parts.append("p" + "-".join(map(str, self.preferred_batch_size)))
        if self.instance_kind != "KIND_CPU":
            parts.append(self.instance_kind.replace("KIND_", "").lower())
        return "_".join(parts)

    @property
    def parts(self) -> tuple[tuple[str, Candidate], ...]:
        """The tuned models' candidates: this one, for the model under load (named ''). A
        pipeline's point (JointCandidate) has one per tuned model, so callers read both alike."""
        return (("", self),)

    @property
    def batching(self) -> bool:
        """Whether this config batches dynamically (the level search refines such configs more)."""
        return self.max_batch_size > 1 and self.max_queue_delay_us is not None

    def params(self) -> dict[str, Any]:
        """Flat parameters (Optuna's trial params; JSON-friendly)."""
        return {
            "instance_count": self.instance_count,
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_us": -1 if self.max_queue_delay_us is None else self.max_queue_delay_us,
            "preferred_batch_size": ",".join(map(str, self.preferred_batch_size)),
            "instance_kind": self.instance_kind,
        }

    @staticmethod
    def from_params(params: dict[str, Any]) -> Candidate:
        """Inverse of params()."""
        delay = int(params["max_queue_delay_us"])
        pref = str(params.get("preferred_batch_size", "") or "")
        return Candidate(
            instance_count=int(params["instance_count"]),
            max_batch_size=int(params["max_batch_size"]),
            max_queue_delay_us=None if delay < 0 else delay,
            preferred_batch_size=tuple(int(x) for x in pref.split(",") if x),
            instance_kind=str(params.get("instance_kind", "KIND_CPU")),
        )

    def columns(self) -> dict[str, Any]:
        """The knob columns of a configs.csv row (from_row reads them back)."""
        return {
            "instance_count": self.instance_count,
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_us": math.nan if self.max_queue_delay_us is None else self.max_queue_delay_us,
            "preferred_batch_size": " ".join(map(str, self.preferred_batch_size)),
            "instance_kind": self.instance_kind,
        }

    @staticmethod
    def from_row(row: Mapping[str, Any]) -> Candidate:
        """The candidate of a configs.csv row (inverse of its knob columns: an empty or NaN
        delay means no dynamic batching, preferred sizes are space-separated; see _sizes)."""
        delay = row.get("max_queue_delay_us")
        pref = row.get("preferred_batch_size")
        return Candidate(
            int(row["instance_count"]),
            int(row["max_batch_size"]),
            None if delay is None or (isinstance(delay, float) and math.isnan(delay)) else int(delay),
            _sizes(pref),
            str(row.get("instance_kind") or "KIND_CPU"),
        )


def _sizes(cell: Any) -> tuple[int, ...]:
    """A preferred_batch_size cell: sizes separated by spaces. A single size comes back from a CSV
    file as a number (4, or 4.0 in a column with blanks), which is that one size, not none."""
    if isinstance(cell, str):
        return tuple(int(x) for x in cell.split())
    if isinstance(cell, numbers.Real) and not isinstance(cell, bool) and math.isfinite(cell):
        return (int(float(cell)),)  # numbers.Real promises __float__, not __int__
    return ()


def knobs_of(config: mc.ModelConfig | Mapping[str, Any]) -> Candidate:
    """Read the tuned settings from a config (protobuf or its JSON dict); instance_kind is
    KIND_AUTO when the config has no instance group."""
    if not isinstance(config, mc.ModelConfig):
        config = from_dict(config)
    count = sum(max(1, g.count) for g in config.instance_group) if config.instance_group else 1
    groups = config.instance_group
    kind = mc.ModelInstanceGroup.Kind.Name(groups[0].kind) if groups else "KIND_AUTO"
    has_db = config.HasField("dynamic_batching")
    return Candidate(
        instance_count=count,
        max_batch_size=int(config.max_batch_size),
        max_queue_delay_us=int(config.dynamic_batching.max_queue_delay_microseconds) if has_db else None,
        preferred_batch_size=tuple(config.dynamic_batching.preferred_batch_size) if has_db else (),
        instance_kind=kind,
    )


def apply_candidate(base: mc.ModelConfig, candidate: Candidate) -> mc.ModelConfig:
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
