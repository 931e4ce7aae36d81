"""Search space rules and applying a candidate to a model config."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.config.modelconfig import (
    Candidate,
    apply_candidate,
    from_dict,
    knobs_of,
    parse_pbtxt,
    read_pbtxt,
    to_dict,
    to_pbtxt,
)
from analyzer.config.space import ModelTraits, check_space, invalid_reason
from analyzer.errors import UsageError
from analyzer.spec.spec import SpaceSpec
from tests.helpers import ROOT

DEMO = ROOT / "sweeps" / "demo" / "models" / "demo_mlp" / "config.pbtxt"
NOBATCH = ROOT / "tests" / "models" / "nobatch" / "config.pbtxt"


def test_config_round_trips_through_text_and_json() -> None:
    base = read_pbtxt(DEMO)
    assert parse_pbtxt(to_pbtxt(base)) == base
    assert from_dict(to_dict(base)) == base
    knobs = knobs_of(base)
    assert (knobs.instance_count, knobs.max_batch_size, knobs.max_queue_delay_us) == (1, 32, 0)


def test_apply_candidate_sets_the_knobs_and_leaves_base_alone() -> None:
    base = read_pbtxt(DEMO)
    before = to_pbtxt(base)
    cfg = apply_candidate(base, Candidate(3, 16, 500, (4, 8)))
    assert to_pbtxt(base) == before
    knobs = knobs_of(cfg)
    assert (knobs.instance_count, knobs.max_batch_size, knobs.max_queue_delay_us) == (3, 16, 500)
    assert knobs.preferred_batch_size == (4, 8)
    assert [i.name for i in cfg.input] == ["INPUT0"] and cfg.backend == "python"
    no_db = apply_candidate(base, Candidate(1, 8, None))
    assert not no_db.HasField("dynamic_batching")


def test_apply_clears_server_filled_preferred_sizes() -> None:
    base = read_pbtxt(DEMO)
    base.dynamic_batching.preferred_batch_size.append(32)  # as a server's autocomplete does
    cfg = apply_candidate(base, Candidate(1, 8, 100))
    assert list(cfg.dynamic_batching.preferred_batch_size) == []


def test_invalid_pbtxt_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a valid model configuration"):
        parse_pbtxt("max_batch_size: banana", "x/config.pbtxt")


def _traits(path: Path) -> ModelTraits:
    return ModelTraits.of(read_pbtxt(path))


def test_validity_rules() -> None:
    traits = _traits(DEMO)
    assert invalid_reason(Candidate(1, 8, 100, (4, 8)), traits) is None
    assert "preferred size must be <= max batch size" in invalid_reason(Candidate(1, 8, 100, (16,)), traits)
    assert "need dynamic batching" in invalid_reason(Candidate(1, 8, None, (4,)), traits)
    assert "change the model's input shapes" in invalid_reason(Candidate(1, 0, None), traits)
    nb = _traits(NOBATCH)
    assert invalid_reason(Candidate(2, 0, None), nb) is None
    assert "does not batch" in invalid_reason(Candidate(2, 4, None), nb)


def test_space_enumeration_drops_invalid_points() -> None:
    traits = _traits(DEMO)
    space = SpaceSpec(
        instance_count=(1, 2),
        max_batch_size=(4, 16),
        max_queue_delay_us=(0,),
        preferred_batch_size=((), (8,)),
    )
    valid = check_space(space, traits)
    # (4, pref 8) is invalid for both instance counts: 2 x 2 x 2 - 2 = 6
    assert len(valid) == 6
    assert Candidate(1, 4, 0, (8,)) not in valid and Candidate(1, 16, 0, (8,)) in valid
    assert len({c.config_id for c in valid}) == 6


def test_space_defaults_fit_the_model() -> None:
    assert {c.max_batch_size for c in check_space(SpaceSpec(), _traits(DEMO))} == {1, 8, 32}
    nb = check_space(SpaceSpec(instance_count=(1, 2, 3)), _traits(NOBATCH))
    assert [c.config_id for c in nb] == ["i1_b0", "i2_b0", "i3_b0"]


def test_space_errors_explain_themselves() -> None:
    with pytest.raises(UsageError, match=r"has max_batch_size 0 .*cannot batch"):
        check_space(SpaceSpec(max_batch_size=(1, 8)), _traits(NOBATCH))
    with pytest.raises(UsageError, match="cannot use dynamic batching"):
        check_space(SpaceSpec(max_queue_delay_us=(0, 100)), _traits(NOBATCH))
    with pytest.raises(UsageError, match="no valid config"):
        check_space(SpaceSpec(max_batch_size=(2,), preferred_batch_size=((4,),)), _traits(DEMO))


def test_candidate_params_round_trip() -> None:
    for cand in (Candidate(2, 16, 500, (4, 8)), Candidate(1, 0, None), Candidate(1, 8, 0, (), "KIND_GPU")):
        assert Candidate.from_params(cand.params()) == cand
    assert Candidate(2, 16, 500, (4, 8), "KIND_GPU").config_id == "i2_b16_d500_p4-8_gpu"


def test_candidate_round_trips_through_a_configs_csv_row(tmp_path: Path) -> None:
    import pandas as pd

    from analyzer.store.rows import config_row

    cands = [Candidate(2, 16, 500, (4, 8)), Candidate(1, 0, None), Candidate(3, 8, 0, (), "KIND_GPU")]
    rows = [
        config_row(c, None, status="ok", error="", mode="concurrency", trial=i, wall_s=1.0, percentile=99)
        for i, c in enumerate(cands)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "configs.csv", index=False)
    back = pd.read_csv(tmp_path / "configs.csv")  # NaN delay, NaN or "4 8" preferred sizes
    assert [Candidate.from_row(r) for _, r in back.iterrows()] == cands


def test_a_single_preferred_size_survives_the_csv_round_trip(tmp_path: Path) -> None:
    import pandas as pd

    from analyzer.config.pipeline import candidate_from_row
    from analyzer.store.rows import config_row

    # One size per config: the column reads back as numbers (4.0 next to a blank), not as text.
    cands = [Candidate(1, 8, 0, (4,)), Candidate(1, 8, 0), Candidate(2, 16, 500, (8,))]
    rows = [
        config_row(c, None, status="ok", error="", mode="concurrency", trial=i, wall_s=1.0, percentile=99)
        for i, c in enumerate(cands)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "configs.csv", index=False)
    back = pd.read_csv(tmp_path / "configs.csv")
    assert back["preferred_batch_size"].dtype == "float64"
    ids = [candidate_from_row(r).config_id for _, r in back.iterrows()]
    assert ids == ["i1_b8_d0_p4", "i1_b8_d0", "i2_b16_d500_p8"]
