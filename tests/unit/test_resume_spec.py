"""A resumed run's spec: read from its spec.yaml by analyzer.spec.spec's reader, as every spec is."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.errors import UsageError
from analyzer.spec.spec import parse_spec, write_spec
from analyzer.store.rundir import RunStore
from analyzer.sweep.setup import resume_spec


def _store(tmp_path: Path) -> RunStore:
    return RunStore.create(None, "m", run_dir=tmp_path / "run")


def test_a_run_resumes_with_the_spec_it_wrote(tmp_path: Path) -> None:
    store = _store(tmp_path)
    spec = parse_spec(
        {
            "model": "m",
            "url": "localhost:8001",
            "budget_ms": 20,
            "space": {"instance_count": [1, 2]},
            "load": {"mode": "rate", "max_level": 500},
        },
        "spec.yaml",
    )
    write_spec(spec, store.path("spec"))
    assert resume_spec(store, None).to_dict() == spec.to_dict()
    other = parse_spec({**spec.to_dict(), "budget_ms": 30}, "other.yaml")
    with pytest.raises(UsageError, match="measured with a different budget_ms"):
        resume_spec(store, other)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("model: [unclosed", "not valid YAML at line 1"),
        ("- a list", "a sweep spec must be a YAML mapping"),
        ("", "a sweep spec must be a YAML mapping"),
    ],
)
def test_an_unreadable_spec_yaml_is_a_usage_error(tmp_path: Path, text: str, reason: str) -> None:
    store = _store(tmp_path)
    store.path("spec").write_text(text)
    with pytest.raises(UsageError) as err:
        resume_spec(store, None)
    assert err.value.message.startswith(f"cannot resume {store.dir}: its spec.yaml is unreadable (")
    assert reason in err.value.message
