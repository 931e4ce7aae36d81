"""The Dash app's callbacks, called directly on a recorded run directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analyzer.errors import UsageError
from analyzer.modelconfig import knobs_of, parse_pbtxt
from dashboards import Dashboard, create_app

RECORDED = Path(__file__).resolve().parents[1] / "data" / "run_demo"


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(RECORDED, target)
    return target


def _text(component) -> str:
    """All text inside a Dash component tree."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    children = getattr(component, "children", None)
    if isinstance(children, (list, tuple)):
        return " ".join(_text(c) for c in children)
    return _text(children)


def test_app_builds_with_callbacks(run: Path) -> None:
    app = create_app(run)
    assert app.layout is not None
    assert len(app.callback_map) >= 8


def test_budget_slider_changes_the_answer(run: Path) -> None:
    board = Dashboard(run)
    panel, fig, chosen = board.answer(board.run.budget_ms, None, None, None)
    assert chosen == board.run.summary["best"]["config_id"] or chosen is not None
    assert "Best at" in _text(panel)
    # The tightest budget no measurement meets: nothing is chosen.
    tight = float(pd.to_numeric(board.run.measurements["p99_ms"]).min()) * 0.5
    panel2, _, chosen2 = board.answer(tight, None, None, None)
    assert chosen2 is None and "No config meets" in _text(panel2)
    # The chosen point is drawn as a star on the Pareto figure, with the budget line.
    names = [t.name for t in fig.data]
    assert any(n and n.startswith("chosen:") for n in names) and "Pareto frontier" in names


def test_filters_limit_the_choice(run: Path) -> None:
    board = Dashboard(run)
    counts = board.options()["counts"]
    _, _, chosen_all = board.answer(board.run.budget_ms, None, None, None)
    best_count = int(board.run.configs.set_index("config_id").loc[chosen_all, "instance_count"])
    others = [c for c in counts if c != best_count]
    if not others:
        pytest.skip("the recorded run has a single instance count")
    _, _, chosen = board.answer(board.run.budget_ms, others, None, None)
    assert chosen != chosen_all


def test_detail_and_download_give_a_loadable_config(run: Path) -> None:
    board = Dashboard(run)
    config_id = str(board.run.configs["config_id"].iloc[0])
    click = {"points": [{"customdata": [config_id, 1.0]}]}
    info, curves, breakdown, pbtxt, detail_id = board.detail(click, None, board.run.budget_ms)
    assert detail_id == config_id and config_id in _text(info)
    cand = board.candidate(config_id)
    knobs = knobs_of(parse_pbtxt(pbtxt))
    assert (knobs.instance_count, knobs.max_batch_size) == (cand.instance_count, cand.max_batch_size)
    assert len(curves.data) == 2 and len(breakdown.data) == 5
    download = board.download(1, config_id)
    assert download["filename"] == "config.pbtxt" and download["content"] == pbtxt


def test_compare_two_configs(run: Path) -> None:
    board = Dashboard(run)
    a, b = board.run.configs["config_id"].iloc[:2]
    table, fig = board.compare(a, b, board.run.budget_ms)
    text = _text(table)
    assert a in text and b in text and "capacity req/s" in text
    assert len(fig.data) == 4


def test_planner(run: Path) -> None:
    board = Dashboard(run)
    _, _, chosen = board.answer(board.run.budget_ms, None, None, None)
    cap = float(board.run.configs.set_index("config_id").loc[chosen, "capacity_rps"])
    out = _text(board.plan(cap * 2.5, 3.0, chosen, board.run.budget_ms))
    assert "3 server replicas" in out and "Cost per million inferences" in out
    assert "Enter a target" in _text(board.plan(None, None, chosen, board.run.budget_ms))


def test_follows_a_run_that_is_still_written(run: Path) -> None:
    board = Dashboard(run)
    version = board.on_tick(1, None)
    assert version
    import dash

    assert board.on_tick(2, version) is dash.no_update
    before = len(board.run.measurements)
    on_disk = pd.read_csv(run / "measurements.csv")
    extra = on_disk.iloc[[0]].copy()
    extra["load_level"] = 999
    stamp = (run / "measurements.csv").stat()
    extra.to_csv(run / "measurements.csv", mode="a", header=False, index=False)
    # Even where the filesystem's clock does not tick between the two writes, the appended
    # row is seen: put the old modification time back.
    os.utime(run / "measurements.csv", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert board.on_tick(3, version) is not dash.no_update
    assert len(board.run.measurements) == before + 1


def test_bad_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a tritune run directory"):
        create_app(tmp_path)
    (tmp_path / "spec.yaml").write_text("model: m\n")
    (tmp_path / "measurements.csv").write_text("not,a\ntable\n\"")
    with pytest.raises(UsageError):
        create_app(tmp_path)
