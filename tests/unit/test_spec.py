"""Sweep spec parsing and validation: every problem named with its key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from analyzer.errors import SpecError
from analyzer.spec.spec import load_spec, parse_spec, spec_from_dict, write_spec
from tests.helpers import ROOT


def test_tritune_demo_finds_the_bundled_spec() -> None:
    from analyzer.cli.sweep import DEMO_SPEC

    assert DEMO_SPEC == ROOT / "sweeps" / "demo.yaml" and DEMO_SPEC.is_file()


def test_demo_spec_is_valid() -> None:
    spec = load_spec(ROOT / "sweeps" / "demo.yaml")
    assert spec.model == "demo_mlp"
    assert spec.model_repository == (ROOT / "sweeps" / "demo" / "models").resolve()
    assert spec.space.instance_count == (1, 2)
    assert spec.load.mode == "concurrency"


def _parse(tmp_path: Path, **data: object):
    (tmp_path / "models").mkdir(exist_ok=True)
    base = {"model": "m", "model_repository": "models"}
    base.update(data)
    return parse_spec(base, "s.yaml", tmp_path)


def test_ranges_and_defaults(tmp_path: Path) -> None:
    spec = _parse(
        tmp_path,
        space={
            "instance_count": {"min": 1, "max": 3},
            "max_batch_size": {"min": 1, "max": 64, "scale": "pow2"},
            "max_queue_delay_us": {"min": 0, "max": 1000, "step": 500},
        },
    )
    assert spec.space.instance_count == (1, 2, 3)
    assert spec.space.max_batch_size == (1, 2, 4, 8, 16, 32, 64)
    assert spec.space.max_queue_delay_us == (0, 500, 1000)
    assert spec.budget_ms == 100 and spec.percentile == 99 and spec.strategy == "optuna"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"bogus": 1}, "key 'bogus': unknown key; allowed here:"),
        ({"budget_ms": 0}, "key 'budget_ms': must be > 0"),
        ({"budget_ms": -5}, "key 'budget_ms': must be > 0"),
        ({"budget_ms": "fast"}, "key 'budget_ms': expected a number"),
        ({"strategy": "random"}, "key 'strategy': must be one of grid, optuna"),
        ({"max_trials": 0}, "key 'max_trials': must be >= 1"),
        ({"space": {"instance_count": []}}, "key 'space.instance_count': expected a list"),
        ({"space": {"instance_count": [0, 1]}}, "0 is not allowed"),
        ({"space": {"max_batch_size": {"min": 8, "max": 4}}}, "min <= max"),
        ({"space": {"max_batch_sizes": [1]}}, "key 'space.max_batch_sizes': unknown key"),
        ({"space": {"preferred_batch_size": [4]}}, "each alternative must be a list"),
        ({"load": {"mode": "burst"}}, "key 'load.mode': must be one of concurrency, rate"),
        ({"load": {"window_s": 0}}, "key 'load.window_s': must be >= 0.1"),
        ({"load": {"min_level": 8, "max_level": 4}}, "exceeds 'load.max_level'"),
        ({"load": {"workers": 0}}, "key 'load.workers': must be >= 1"),
        ({"load": {"workers": "many"}}, "key 'load.workers': expected a whole number"),
        ({"inputs": {"INPUT0": [0]}}, "key 'inputs.INPUT0'"),
        ({"url": "h:1"}, "give exactly one of 'model_repository'"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _parse(tmp_path, **data)
    assert message in str(info.value)
    assert "s.yaml" in str(info.value)
    assert info.value.exit_code == 2


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        _parse(tmp_path, budget_ms=-1, strategy="x", space={"instance_count": "two"})
    text = str(info.value)
    assert "budget_ms" in text and "strategy" in text and "space.instance_count" in text


def test_missing_model_and_repository(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="key 'model': required"):
        parse_spec({"model_repository": "x"}, "s.yaml", tmp_path)
    with pytest.raises(SpecError, match="is not a directory"):
        parse_spec({"model": "m", "model_repository": "nope"}, "s.yaml", tmp_path)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: m\nspace: [1, 2\n")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML at line \d+"):
        load_spec(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(path)


def test_overrides_and_round_trip(tmp_path: Path) -> None:
    spec = _parse(tmp_path, space={"instance_count": [1, 2]})
    changed = spec.with_overrides(budget_ms=5.0, strategy="grid", max_trials=None)
    assert changed.budget_ms == 5.0 and changed.strategy == "grid" and changed.max_trials == spec.max_trials
    remote = spec.with_overrides(url="localhost:8001")
    assert remote.url == "localhost:8001" and remote.model_repository is None
    write_spec(changed, tmp_path / "spec.yaml")
    import yaml

    again = spec_from_dict(yaml.safe_load((tmp_path / "spec.yaml").read_text()), "spec.yaml")
    assert again.to_dict() == changed.to_dict()


def test_percentile_must_be_one_the_measurements_store() -> None:
    with pytest.raises(SpecError, match=r"key 'percentile': must be one of 50, 90, 95, 99, got 99\.9"):
        parse_spec({"model": "m", "url": "h:1", "percentile": 99.9})
    assert parse_spec({"model": "m", "url": "h:1", "percentile": 95}).percentile == 95


def test_new_keys_are_optional_and_checked() -> None:
    spec = parse_spec({"model": "m", "url": "h:1"})
    assert spec.max_trials is None and spec.load.window_s is None and spec.load.max_level is None
    assert spec.load.cap == 1024 and spec.confirm_top == 3 and spec.confirm_rounds == 3
    with pytest.raises(SpecError, match="key 'confirm_rounds': must be >= 3"):
        parse_spec({"model": "m", "url": "h:1", "confirm_rounds": 2})
    assert parse_spec({"model": "m", "url": "h:1", "confirm_top": 0}).confirm_top == 0


def test_load_workers_is_a_number_or_auto_and_does_not_block_a_resume(tmp_path: Path) -> None:
    from analyzer.sweep.setup import incompatible_keys

    assert _parse(tmp_path, load={"workers": 3}).load.workers == 3
    assert _parse(tmp_path, load={"workers": "auto"}).load.workers is None
    assert _parse(tmp_path).load.workers is None
    two, four = _parse(tmp_path, load={"workers": 2}), _parse(tmp_path, load={"workers": 4, "max_level": 64})
    # How many processes send the load does not change what was measured; the cap does.
    assert incompatible_keys(two.to_dict(), _parse(tmp_path, load={"workers": 4}).to_dict()) == []
    assert incompatible_keys(two.to_dict(), four.to_dict()) == ["load"]


def test_url_on_the_command_line_replaces_the_spec_s_server(tmp_path: Path) -> None:
    # A spec written for a repository this machine does not have, and one with no server at all:
    # --url makes both complete, and the repository is neither used nor checked.
    for name, server in (("repo.yaml", {"model_repository": "not/here"}), ("none.yaml", {})):
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"model": "m", "budget_ms": 10, **server}))
        with pytest.raises(SpecError):
            load_spec(path)
        spec = load_spec(path, url="gpu-box:8001")
        assert spec.url == "gpu-box:8001" and spec.model_repository is None


def test_sweep_url_overrides_a_spec_s_repository(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from analyzer.cli.main import main

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"model": "m", "budget_ms": 10, "model_repository": "not/here"}))
    # Port 9 (discard) has no server: the spec is accepted and the error is about the server.
    result = CliRunner().invoke(
        main, ["sweep", str(path), "--url", "127.0.0.1:9", "--out", str(tmp_path / "o"), "-q"]
    )
    assert result.exit_code == 2
    assert "cannot reach a Triton server at 127.0.0.1:9" in result.output
    assert "model_repository" not in result.output
