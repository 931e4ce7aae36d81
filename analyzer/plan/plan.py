"""What a sweep tunes, from the models' configs: the candidates of one model, of a pipeline, or
of several models on one server, and the checks that refuse a space before anything is measured.

Pure: the spec and the models' base configs in (a pipeline's through `config_of`, which the
caller backs with the model repository's files or with a server), candidates and the search's
starting point out, or a UsageError naming what is wrong. analyzer.sweep.setup runs this with a server;
analyzer.plan.preflight runs it before one starts, from a local repository's files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from analyzer.config.modelconfig import Candidate, ModelConfig
from analyzer.config.pipeline import (
    JointCandidate,
    PipelineTarget,
    batch_floors,
    ensemble_steps,
    is_ensemble,
    joint_candidates,
    load_order,
    reachable,
)
from analyzer.config.space import ModelTraits, check_space
from analyzer.errors import UsageError
from analyzer.judge.targets import Target
from analyzer.limits import MAX_SPACE_POINTS
from analyzer.spec.space import TargetSpec
from analyzer.spec.spec import SpaceSpec, SweepSpec

# The joint space is enumerated; past this, narrow the per-model spaces (each has the limit too).
MAX_JOINT_POINTS = MAX_SPACE_POINTS


def model_space(spec: SweepSpec, base: ModelConfig) -> tuple[list[Candidate], Candidate]:
    """One model's candidates and the search's starting point (its config as it is today)."""
    traits = ModelTraits.of(base)
    return check_space(spec.space, traits, spec.source), traits.base


def joint_space(
    source: str, tuned: dict[str, list[Candidate]], order: list[str], bases: dict[str, ModelConfig], hint: str
) -> tuple[list[JointCandidate], JointCandidate]:
    """The joint candidates of several tuned models (refused past MAX_JOINT_POINTS), and the
    search's starting point: every tuned model as it is configured today."""
    points = math.prod(len(c) for c in tuned.values())
    if points > MAX_JOINT_POINTS:
        raise UsageError(
            f"{source}: the joint space has {points} configs (the product of "
            + ", ".join(f"{n}: {len(c)}" for n, c in tuned.items())
            + f"); the limit is {MAX_JOINT_POINTS}",
            hint=hint,
        )
    start = JointCandidate(tuple((n, ModelTraits.of(bases[n]).base) for n in order if n in tuned))
    return joint_candidates(tuned, order), start


def _examples(steps: list[str]) -> str:
    return ", ".join(f"{n}: {{instance_count: [1, 2]}}" for n in steps[:2])


def pipeline_plan(
    spec: SweepSpec, top: ModelConfig, config_of: Callable[[str], ModelConfig]
) -> tuple[PipelineTarget, list[JointCandidate], Any]:
    """A pipeline's plan: discover the ensemble's steps (asking `config_of` for each model's base
    config, in discovery order), check each tuned model's space, and build the joint candidates.
    Returns the target (load order, base configs, tuned models), the candidates and the search's
    starting point (today's configs)."""
    configs: dict[str, ModelConfig] = {spec.model: top}
    named = dict(spec.models or {})
    frontier = [spec.model, *named]
    while frontier:  # follow ensembles (nested too) and the named models' own ensembles
        name = frontier.pop()
        if name not in configs:
            configs[name] = config_of(name)
        if is_ensemble(configs[name]):
            frontier.extend(step for step in ensemble_steps(configs[name]) if step not in configs)
    steps = reachable(spec.model, configs)
    space_given = spec.space != SpaceSpec()
    if is_ensemble(top):
        if space_given:
            raise UsageError(
                f"{spec.source}: model {spec.model!r} is an ensemble; it has no instances or batching of its "
                "own. "
                f"Its composing models are: {', '.join(steps)}",
                hint="move the knobs from space: to models:, e.g. models: {" + _examples(steps) + "}",
            )
        if not named:
            raise UsageError(
                f"{spec.source}: model {spec.model!r} is an ensemble of {', '.join(steps)}; say which of "
                "them to tune",
                hint="add models: with a space for each model to tune ({} loads one as it is), e.g. models: {"
                + _examples(steps)
                + "}",
            )
    tuned: dict[str, list[Candidate]] = {}
    floors = batch_floors(configs)
    for name, space in named.items():
        if name == spec.model:
            raise UsageError(
                f"{spec.source}: models.{name}: the model under load is tuned by space:, not models:",
                hint=f"move models.{name} to space:",
            )
        if space == SpaceSpec():
            continue  # {}: loaded as it is
        if is_ensemble(configs[name]):
            raise UsageError(
                f"{spec.source}: models.{name} is an ensemble; tune its composing models "
                f"({', '.join(reachable(name, configs))}) instead"
            )
        tuned[name] = check_space(space, ModelTraits.of(configs[name]), f"{spec.source}: models.{name}")
        floor, ensemble = floors.get(name, (0, ""))
        fits = [c for c in tuned[name] if c.max_batch_size >= floor]
        if not fits:
            raise UsageError(
                f"{spec.source}: models.{name}: every max_batch_size in its space is below {floor}, the "
                f"max_batch_size of ensemble {ensemble!r}; the server refuses an ensemble whose steps batch "
                "less "
                "than it does",
                hint=f"give models.{name}.max_batch_size values >= {floor}, or lower {ensemble}'s "
                "max_batch_size",
            )
        tuned[name] = fits  # the rest would be refused by the server at every load
    if space_given:  # a BLS model (or plain model) under load, tuned too (an ensemble was refused above)
        tuned[spec.model] = check_space(spec.space, ModelTraits.of(top), spec.source)
    if not tuned:
        raise UsageError(
            f"{spec.source}: nothing to tune: every model under models: is {{}} and space: is empty",
            hint="give a space for at least one model under models: (or space: for the top model)",
        )
    order = load_order(spec.model, configs, named)
    candidates, start = joint_space(
        spec.source, tuned, order, configs, "narrow some models' spaces, or load some as they are with {}"
    )
    target = PipelineTarget(
        top=spec.model,
        order=order,
        bases={n: configs[n] for n in order},
        tuned=[n for n in order if n in tuned],
        steps=[n for n in order if n != spec.model],
    )
    return target, candidates, start


def target_space(
    spec: SweepSpec, name: str, t: TargetSpec, base: ModelConfig
) -> tuple[Target, list[Candidate]]:
    """One of several models on one server (the spec's `targets.<name>`, `t`): its share and
    budget, and its candidates."""
    if is_ensemble(base):
        raise UsageError(
            f"{spec.source}: targets.{name} is an ensemble; tune one pipeline at a time with "
            "model: and models:",
            hint="remove it from targets:",
        )
    candidates = check_space(t.space, ModelTraits.of(base), f"{spec.source}: targets.{name}")
    return Target(name, t.share, t.budget_ms if t.budget_ms is not None else spec.budget_ms), candidates


def targets_plan(
    spec: SweepSpec, bases: dict[str, ModelConfig], tuned: dict[str, list[Candidate]]
) -> tuple[PipelineTarget, list[JointCandidate], JointCandidate]:
    """Several models' apply plan, joint candidates and the search's starting point, from each
    model's base config and candidates (`target_space`), in the spec's order."""
    names = list(tuned)
    candidates, start = joint_space(spec.source, tuned, names, bases, "narrow some targets' spaces")
    return PipelineTarget(top="", order=names, bases=bases, tuned=names, steps=[]), candidates, start
