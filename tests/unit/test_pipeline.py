"""Pipelines without a server: step discovery, load order, joint candidates, step statistics,
the bottleneck, and the per-model spec."""

from __future__ import annotations

import math

import pytest

from analyzer.config.modelconfig import Candidate, parse_pbtxt
from analyzer.config.pipeline import (
    JointCandidate,
    bottleneck,
    candidate_from_row,
    ensemble_steps,
    is_ensemble,
    joint_candidates,
    load_order,
    reachable,
    step_stat,
    steps_from_row,
)
from analyzer.errors import SpecError, UsageError
from analyzer.search.study import Encoding
from analyzer.search.tpe import auto_patience, joint_seeds, polish_order
from analyzer.spec.spec import SpaceSpec, parse_spec
from analyzer.store.rows import config_row


def ensemble(*steps: str) -> str:
    body = ", ".join(f'{{ model_name: "{s}" model_version: -1 }}' for s in steps)
    return f'platform: "ensemble" max_batch_size: 8 ensemble_scheduling {{ step [ {body} ] }}'


def test_nested_ensembles_load_their_steps_first_and_named_callees_before_the_top() -> None:
    configs = {
        "top": parse_pbtxt(ensemble("pre", "inner", "post")),
        "inner": parse_pbtxt(ensemble("a", "b", "a")),
        "pre": parse_pbtxt('backend: "python"'),
    }
    assert is_ensemble(configs["top"]) and not is_ensemble(configs["pre"])
    assert ensemble_steps(configs["inner"]) == ["a", "b"]
    assert load_order("top", configs, ()) == ["pre", "a", "b", "inner", "post", "top"]
    assert reachable("top", configs) == ["pre", "a", "b", "inner", "post"]
    # A BLS model's callees come from the spec; they load before it, in the order given.
    assert load_order("bls", {"bls": parse_pbtxt('backend: "python"')}, ["cls", "pre"]) == [
        "cls",
        "pre",
        "bls",
    ]
    cyclic = {"x": parse_pbtxt(ensemble("y")), "y": parse_pbtxt(ensemble("x"))}
    with pytest.raises(UsageError, match="cycle"):
        load_order("x", cyclic, ())


def test_joint_candidates_are_the_product_and_round_trip_through_params_and_rows() -> None:
    pre = [Candidate(1, 8, 0), Candidate(2, 8, 0)]
    cls = [Candidate(1, 8, None), Candidate(1, 32, 1000), Candidate(4, 32, 1000)]
    joint = joint_candidates({"cls": cls, "pre": pre}, ["pre", "cls", "top"])
    assert len(joint) == 6 and all(j.names == ("pre", "cls") for j in joint)
    j = joint[-1]
    assert j.config_id == "pre.i2_b8_d0+cls.i4_b32_d1000" and j.instance_count == 6 and j.batching
    assert JointCandidate.from_params(j.params()) == j
    row = config_row(
        j, None, status="failed", error="x", mode="concurrency", trial=1, wall_s=0.0, percentile=99.0
    )
    assert (
        row["instance_count"] == 6
        and row["pre.instance_count"] == 2
        and row["cls.max_queue_delay_us"] == 1000
    )
    assert candidate_from_row(row) == j
    assert candidate_from_row(
        {"instance_count": 2, "max_batch_size": 8, "max_queue_delay_us": math.nan}
    ) == Candidate(2, 8, None)
    assert j.summary()["cls"] == {"instance_count": 4, "max_batch_size": 32, "max_queue_delay_us": 1000}
    no_delay = joint_candidates({"cls": [Candidate(1, 8, None)]}, ["cls"])[0]
    assert (
        candidate_from_row(
            config_row(no_delay, None, status="ok", error="", mode="rate", trial=1, wall_s=0, percentile=99.0)
        )
        == no_delay
    )


def test_the_search_encodes_every_models_knobs_and_polishes_the_bottleneck_first() -> None:
    pre = [Candidate(c, 8, 0) for c in (1, 2)]
    cls = [Candidate(c, b, 0) for c in (1, 2, 4) for b in (8, 32)]
    joint = joint_candidates({"pre": pre, "cls": cls}, ["pre", "cls"])
    enc = Encoding(joint)
    assert enc.axes[:2] == ("pre.instance_count", "pre.max_batch_size")
    assert all(enc.decode(enc.encode(j)) == j for j in joint)
    # Knobs that vary: pre's instances, cls's instances and batch sizes.
    assert auto_patience(joint) == 9
    order = polish_order(enc.axes, "cls")
    assert order[:3] == ["cls.instance_count", "cls.max_batch_size", "cls.max_queue_delay_us"]
    assert polish_order(("instance_count", "max_batch_size", "max_queue_delay_us")) == [
        "max_queue_delay_us",
        "max_batch_size",
        "instance_count",
    ]
    base = JointCandidate((("pre", Candidate(1, 8, 0)), ("cls", Candidate(1, 8, 0))))
    seeds = joint_seeds(joint, base)
    assert seeds[0] == base and len(seeds) == 2 and seeds[1] != base


def test_step_statistics_name_the_busiest_step() -> None:
    def stats(inferences: int, executions: int, queue_ns: int, busy_ns: int) -> dict:
        return {
            "inference_count": inferences,
            "execution_count": executions,
            "inference_stats": {"queue": {"count": inferences, "ns": queue_ns}},
            "batch_stats": [{"batch_size": 1, "compute_infer": {"count": executions, "ns": busy_ns}}],
        }

    zero = stats(0, 0, 0, 0)
    # Over 2 s: pre executed 1000 times for 0.2 ms each (0.2 s busy of 1 instance: 10 %);
    # cls ran 250 batches of 4 at 6 ms (1.5 s busy over 2 instances: 37.5 %).
    pre = step_stat("pre", zero, stats(1000, 1000, 10**8, 2 * 10**8), requests=1000, span_s=2.0, instances=1)
    cls = step_stat(
        "cls", zero, stats(1000, 250, 4 * 10**9, 15 * 10**8), requests=1000, span_s=2.0, instances=2
    )
    assert pre.busy_pct == pytest.approx(10.0) and pre.compute_ms == pytest.approx(0.2) and pre.batch == 1
    assert cls.busy_pct == pytest.approx(37.5) and cls.batch == 4 and cls.per_request == 0.25
    assert cls.queue_ms == pytest.approx(4.0)
    assert bottleneck([pre, cls]) == "cls"
    idle = step_stat("idle", zero, zero, requests=0, span_s=2.0, instances=1)
    assert bottleneck([idle]) == "" and math.isnan(idle.batch)
    row = {"config_id": "x"} | {k: v for k, v in cls.as_extra().items()}
    assert steps_from_row(row) == [
        {"name": "cls", **{k.split(".")[-1]: v for k, v in cls.as_extra().items()}}
    ]


def test_the_spec_takes_per_model_spaces(tmp_path) -> None:
    spec = parse_spec(
        {
            "model": "pipe",
            "url": "localhost:8001",
            "models": {"pre": {"instance_count": [1, 2]}, "cls": {}, "post": None},
        }
    )
    assert spec.models == {"pre": SpaceSpec(instance_count=(1, 2)), "cls": SpaceSpec(), "post": SpaceSpec()}
    assert spec.to_dict()["models"] == {"pre": {"instance_count": [1, 2]}, "cls": {}, "post": {}}
    assert parse_spec({"model": "m", "url": "localhost:8001"}).models is None
    with pytest.raises(SpecError, match=r"models\.pre\.instance_count") as err:
        parse_spec({"model": "pipe", "url": "localhost:8001", "models": {"pre": {"instance_count": [0]}}})
    with pytest.raises(SpecError, match=r"models\.pre\.") as err:
        parse_spec({"model": "pipe", "url": "localhost:8001", "models": {"pre": {"instances": [1]}}})
    assert "instances" in str(err.value)
