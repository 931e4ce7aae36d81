"""The search space: candidate configs and the rules that make one valid for a model.

Pure: a SpaceSpec and what the model allows (ModelTraits, read from its base config) in, valid
candidates (and the reasons others were dropped) out. Rules are checked here so the server is
never asked to load a config we can tell is wrong. A point is a `Candidate`, the knob values of
one model (defined with the configs it is applied to, in analyzer.config.modelconfig).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from analyzer.config.modelconfig import Candidate, ModelConfig, knobs_of
from analyzer.errors import UsageError
from analyzer.spec.space import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_INSTANCE_COUNTS,
    DEFAULT_QUEUE_DELAYS,
    space_size_problem,
)
from analyzer.spec.spec import SpaceSpec


@dataclass(frozen=True)
class ModelTraits:
    """What a model's base config allows the search to change."""

    name: str
    batching: bool  # max_batch_size > 0 in the base config
    dynamic_batching_allowed: bool  # no sequence batcher, not an ensemble
    base: Candidate  # the knobs of the config as it is now

    @staticmethod
    def of(config: ModelConfig) -> ModelTraits:
        """Traits from a model's base config."""
        knobs = knobs_of(config)
        batching = config.max_batch_size > 0
        allowed = batching and not config.HasField("sequence_batching") and config.platform != "ensemble"
        kind = knobs.instance_kind if knobs.instance_kind in ("KIND_CPU", "KIND_GPU") else "KIND_CPU"
        return ModelTraits(
            name=config.name,
            batching=batching,
            dynamic_batching_allowed=allowed,
            base=Candidate(
                knobs.instance_count,
                knobs.max_batch_size,
                knobs.max_queue_delay_us if allowed else None,
                tuple(knobs.preferred_batch_size),
                kind,
            ),
        )


def invalid_reason(c: Candidate, traits: ModelTraits) -> str | None:
    """Why a candidate cannot be loaded for this model (None when it is valid)."""
    if c.instance_count < 1:
        return "instance_count must be >= 1"
    if not traits.batching:
        if c.max_batch_size != 0:
            return "the model does not batch (max_batch_size 0), so max_batch_size must stay 0"
        if c.max_queue_delay_us is not None or c.preferred_batch_size:
            return "dynamic batching needs a model that batches"
        return None
    if c.max_batch_size < 1:
        return "max_batch_size 0 would change the model's input shapes (it batches today)"
    if c.max_queue_delay_us is not None and not traits.dynamic_batching_allowed:
        return "the model cannot use dynamic batching (sequence batcher or ensemble)"
    if c.preferred_batch_size and c.max_queue_delay_us is None:
        return "preferred batch sizes need dynamic batching"
    if any(p > c.max_batch_size for p in c.preferred_batch_size):
        return "dynamic batching preferred size must be <= max batch size"
    return None


def resolve_space(space: SpaceSpec, traits: ModelTraits, source: str = "the sweep spec") -> SpaceSpec:
    """Fill the knobs a spec left out with defaults that fit the model, and refuse what the
    model cannot do: batching for a model with max_batch_size 0, queue delays for a model that
    cannot use dynamic batching."""
    if not traits.batching:
        if space.max_batch_size is not None and set(space.max_batch_size) != {0}:
            raise UsageError(
                f"{source}: model {traits.name!r} has max_batch_size 0 (it cannot batch), but "
                f"space.max_batch_size asks for {list(space.max_batch_size)}",
                hint="drop max_batch_size and max_queue_delay_us from the space (or set "
                "max_batch_size: [0]); only instance_count can be tuned for this model",
            )
        if space.max_queue_delay_us is not None or space.preferred_batch_size is not None:
            raise UsageError(
                f"{source}: model {traits.name!r} has max_batch_size 0, so it cannot use dynamic batching, "
                "but the space sets max_queue_delay_us or preferred_batch_size",
                hint="remove max_queue_delay_us and preferred_batch_size from the space",
            )
        sizes: tuple[int, ...] = (0,)
        delays: tuple[int, ...] = ()
    else:
        sizes = space.max_batch_size or DEFAULT_BATCH_SIZES
        if not traits.dynamic_batching_allowed:
            if space.max_queue_delay_us is not None:
                raise UsageError(
                    f"{source}: model {traits.name!r} cannot use dynamic batching (sequence batcher or "
                    "ensemble), but the space sets max_queue_delay_us",
                    hint="remove max_queue_delay_us from the space",
                )
            delays = ()
        else:
            delays = (
                space.max_queue_delay_us if space.max_queue_delay_us is not None else DEFAULT_QUEUE_DELAYS
            )
    return SpaceSpec(
        instance_count=space.instance_count or DEFAULT_INSTANCE_COUNTS,
        max_batch_size=sizes,
        max_queue_delay_us=delays,  # () = no dynamic batching
        preferred_batch_size=space.preferred_batch_size or ((),),
        instance_kind=space.instance_kind or ("KIND_CPU",),
    )


def candidates(space: SpaceSpec, traits: ModelTraits) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
    """All valid candidates of a resolved space for this model, and the dropped ones with reasons."""
    delays: tuple[int | None, ...] = tuple(space.max_queue_delay_us or ()) or (None,)
    valid, dropped = [], []
    for count, size, delay, pref, kind in itertools.product(
        space.instance_count or (),
        space.max_batch_size or (),
        delays,
        space.preferred_batch_size or ((),),
        space.instance_kind or ("KIND_CPU",),
    ):
        cand = Candidate(count, size, delay, pref, kind)
        reason = invalid_reason(cand, traits)
        if reason is None:
            valid.append(cand)
        else:
            dropped.append((cand, reason))
    return valid, dropped


def check_space(space: SpaceSpec, traits: ModelTraits, source: str = "the sweep spec") -> list[Candidate]:
    """Valid candidates of the spec's space for this model, or a UsageError saying why none (or
    that the space is larger than MAX_SPACE_POINTS: its size is counted before it is built)."""
    resolved = resolve_space(space, traits, source)
    counts = {
        "instance_count": len(resolved.instance_count or ()),
        "max_batch_size": len(resolved.max_batch_size or ()),
        "max_queue_delay_us": len(resolved.max_queue_delay_us or ()) or 1,  # () = no dynamic batching
        "preferred_batch_size": len(resolved.preferred_batch_size or ()),
        "instance_kind": len(resolved.instance_kind or ()),
    }
    too_large = space_size_problem(counts)
    if too_large:
        raise UsageError(f"{source}: the space of model {traits.name!r} has {too_large}")
    valid, dropped = candidates(resolved, traits)
    if not valid:
        reasons = sorted({reason for _, reason in dropped}) or ["the space has no points"]
        raise UsageError(
            f"{source}: the search space has no valid config for model {traits.name!r}: "
            + "; ".join(reasons),
            hint="widen the space (e.g. larger max_batch_size values, or preferred sizes <= max_batch_size)",
        )
    return valid
