"""Set up a sweep's workload on its server: read each model's config before the sweep, check
its space (analyzer.plan.plan), load what it needs, record the base configs in the run
directory, and return the workload. The only place that asks which kind a spec describes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analyzer.config.modelconfig import ModelConfig, from_dict, parse_pbtxt, to_dict, to_pbtxt
from analyzer.config.pipeline import is_ensemble
from analyzer.errors import ModelNotReadyError
from analyzer.limits import connection_budget
from analyzer.plan.plan import model_space, pipeline_plan, target_space, targets_plan
from analyzer.plan.preflight import local_config
from analyzer.server.session import ServerSession, prepare_model
from analyzer.spec.space import TargetSpec
from analyzer.spec.spec import SweepSpec
from analyzer.store.rundir import RunStore
from analyzer.workload.base import Lane, Workload
from analyzer.workload.kinds import OneModel, Pipeline, SeveralModels


def base_config(
    spec: SweepSpec, session: ServerSession, name: str, served: dict[str, Any] | None = None
) -> ModelConfig:
    """A model's config before the sweep: its config.pbtxt in a local repository; on a running
    server, the config its originals record holds (read from the server once, before tritune
    first changed anything, and never again: a resumed run may find a candidate loaded); else
    what our own server reports (a config the server completes itself)."""
    config = local_config(Path(spec.model_repository), name) if spec.model_repository is not None else None
    if config is None and session.originals is not None:
        session.control.require_model(name)  # an unknown name is bad input, before anything is recorded
        config = parse_pbtxt(session.originals.base_config(name), f"the originals record of {name}")
    if config is None:
        if served is None:
            session.control.require_model(name)
            try:
                served = session.control.model_config(name)
            except ModelNotReadyError:
                # Not loaded (a BLS model's callee, say): the pipeline needs it loaded anyway.
                session.control.load_model(name)
                served = session.control.model_config(name)
        config = from_dict(served)
    config.name = name
    return config


def build_workload(spec: SweepSpec, session: ServerSession, store: RunStore) -> Workload:
    """The spec's workload, with its models ready on the server (the pre-flight load on a
    running server answers whether configs can be applied at all, before anything is measured)."""
    if spec.targets is not None:
        return _several(spec, spec.targets, session, store)
    info = prepare_model(
        session, spec.model, spec.inputs, load=session.local is not None, plan=spec.input_data, seed=spec.seed
    )
    base = base_config(spec, session, spec.model, info.config)
    store.write_base_config(to_pbtxt(base))
    lane = Lane(info, spec.budget_ms)
    if spec.models is not None or is_ensemble(base):
        return _pipeline(spec, session, base, lane, store)
    if session.local is None:
        session.control.load_model(spec.model, to_dict(base))  # pre-flight
    candidates, start = model_space(spec, base)
    return OneModel(lane, base, candidates, start)


def _pipeline(
    spec: SweepSpec, session: ServerSession, top: ModelConfig, lane: Lane, store: RunStore
) -> Pipeline:
    """A pipeline: its plan (the steps discovered, each tuned model's space checked, the joint
    candidates), then every model it needs loaded, dependencies first."""
    target, candidates, start = pipeline_plan(spec, top, lambda name: base_config(spec, session, name))
    for name in target.order:  # dependencies first: a BLS model's callees must be ready before it
        if session.local is not None:
            session.control.load_model(name)
        else:
            # Pre-flight, as for one model: reloading today's config answers whether configs
            # can be applied at all.
            session.control.load_model(name, to_dict(target.bases[name]) if name in target.tuned else None)
    for name in target.tuned:
        store.write_model_base(name, to_pbtxt(target.bases[name]))
    return Pipeline(
        Lane(lane.info, lane.budget_ms, steps=tuple(target.steps)), top, target, candidates, start
    )


def _several(
    spec: SweepSpec, targets_spec: Mapping[str, TargetSpec], session: ServerSession, store: RunStore
) -> SeveralModels:
    """Several models on one server (the spec's `targets:`): load each, check its space, build
    the joint candidates."""
    # The models are loaded at once from this process: they share its connections.
    share = max(1, connection_budget() // len(targets_spec))
    lanes, targets, tuned, bases = [], [], {}, {}
    for name, t in targets_spec.items():
        info = prepare_model(
            session, name, t.inputs or spec.inputs, load=session.local is not None, seed=spec.seed
        )
        bases[name] = base_config(spec, session, name, info.config)
        target, tuned[name] = target_space(spec, name, t, bases[name])
        if session.local is None:
            session.control.load_model(name, to_dict(bases[name]))  # pre-flight, as for one model
        targets.append(target)
        lanes.append(Lane(info, target.budget_ms, share=target.share, connections=share))
        store.write_model_base(name, to_pbtxt(bases[name]))
    _, candidates, start = targets_plan(spec, bases, tuned)
    return SeveralModels(
        spec.model,
        ModelConfig(name=spec.model),
        targets,
        tuple(lanes),
        bases,
        candidates,
        start,
        spec.budget_ms,
    )
