"""The three workloads (analyzer.workload.kinds): what loading a candidate means, the knobs a row
names, each step's instances, how a level splits and how the lanes' verdicts combine."""

from __future__ import annotations

from analyzer.config.modelconfig import Candidate, ModelConfig, knobs_of, parse_pbtxt
from analyzer.config.pipeline import JointCandidate, PipelineTarget
from analyzer.judge.targets import Target
from analyzer.judge.verdict import Status, Verdict
from analyzer.load.clients import RequestSet
from analyzer.server.session import ModelInfo
from analyzer.workload import Lane, OneModel, Pipeline, SeveralModels, Workload
from tests.builders import measured


def config(name: str, count: int = 1, batch: int = 8) -> ModelConfig:
    return parse_pbtxt(
        f'name: "{name}" backend: "python" max_batch_size: {batch} instance_group [{{ count: {count} }}]'
    )


def lane(name: str, budget_ms: float = 50.0, **kw: object) -> Lane:
    return Lane(ModelInfo(name, {}, {}, [], RequestSet(())), budget_ms, **kw)  # type: ignore[arg-type]


def m(level: float, throughput: float, p99: float) -> object:
    return measured(level, throughput, p50=p99 / 2, p90=p99, p95=p99, p99=p99, requests=1000)


def test_one_model_loads_its_base_config_with_the_candidates_knobs() -> None:
    one: Workload = OneModel(lane("m"), config("m"), [], None)
    cand = Candidate(3, 16, 500)
    [(name, loaded)] = one.configs(cand)
    assert name == "m" and loaded is not None
    assert knobs_of(loaded) == Candidate(3, 16, 500)
    assert one.knobs(cand) == Candidate(3, 16, 500)
    assert one.split(12.0, "concurrency") == {"m": 12.0}
    assert one.step_instances(one.configs(cand)) == {} and one.steps == () and one.unconfirmed == ""


def test_one_lane_keeps_its_own_measurement_and_verdict() -> None:
    one = OneModel(lane("m"), config("m"), [], None)
    got, verdict = m(4, 400.0, 20.0), Verdict(True, Status.MEETS, "ok", True)
    assert one.combine(4.0, {"m": (got, verdict)}, "p99_ms") == (got, verdict)  # type: ignore[arg-type]
    assert one.best_extra({"config_id": "x"}) == {}


def test_a_pipeline_loads_its_tuned_models_first_and_its_top_model_last() -> None:
    target = PipelineTarget(
        top="ens",
        order=["pre", "cls", "ens"],
        bases={"pre": config("pre", 2), "cls": config("cls"), "ens": config("ens")},
        tuned=["cls"],
        steps=["pre", "cls"],
    )
    pipe = Pipeline(lane("ens", steps=("pre", "cls")), config("ens"), target, [], None)
    cand = JointCandidate((("cls", Candidate(4, 32, 0)),))
    loads = pipe.configs(cand)
    assert [name for name, _ in loads] == ["cls", "ens"]
    assert loads[1][1] is None  # the ensemble is reloaded as it is, on the models just loaded
    assert knobs_of(loads[0][1]) == Candidate(4, 32, 0)  # type: ignore[arg-type]
    assert pipe.knobs(cand) == Candidate(4, 0, None)  # every tuned model's instances
    assert pipe.step_instances(loads) == {"pre": 2, "cls": 4}  # an untuned step keeps its own
    assert pipe.steps == ("pre", "cls") and pipe.lanes[0].steps == ("pre", "cls")


def test_several_models_split_a_level_by_share_and_meet_only_together() -> None:
    targets = [Target("a", 3.0, 10.0), Target("b", 1.0, 40.0)]
    several = SeveralModels(
        "a+b",
        ModelConfig(name="a+b"),
        targets,
        (lane("a", 10.0, share=3.0, connections=8), lane("b", 40.0, share=1.0, connections=8)),
        {"a": config("a"), "b": config("b")},
        [],
        None,
        budget_ms=20.0,
    )
    assert several.split(8.0, "concurrency") == {"a": 6.0, "b": 2.0}
    cand = JointCandidate((("a", Candidate(2, 8, 0)), ("b", Candidate(1, 8, 0))))
    assert [name for name, _ in several.configs(cand)] == ["a", "b"]
    assert several.knobs(cand) == Candidate(3, 0, None)
    ok, over = Verdict(True, Status.MEETS, "ok", True), Verdict(False, Status.OVER_BUDGET, "slow", True)
    combined, verdict = several.combine(
        8.0,
        {"a": (m(6, 600.0, 8.0), ok), "b": (m(2, 100.0, 50.0), over)},  # type: ignore[dict-item]
        "p99_ms",
    )
    assert not verdict.meets and verdict.reason.startswith("b: ")
    assert combined.throughput_rps == 700.0
    assert combined.p99_ms == 50.0 * 20.0 / 40.0  # the worst model's, scaled to the sweep's budget
    assert several.unconfirmed  # its pick is the search's, and it says so
    row = {"target.a.meets": 1.0, "target.a.latency_ms": 8.0, "target.b.meets": 0.0}
    assert set(several.best_extra(row)["targets"]) == {"a", "b"}
