"""The Dash app's callbacks, called directly on a recorded run directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dash
import pandas as pd
import pytest

from analyzer.config.modelconfig import knobs_of, parse_pbtxt
from analyzer.errors import UsageError
from analyzer.judge.choose import choice
from analyzer.judge.confirm_stats import confirmation_stats
from analyzer.report import choose_at_budget
from dashboards import Dashboard, create_app
from dashboards.callbacks import FILTERS, filter_choices, follow_selection
from dashboards.data import DELAY_OFF
from tests.builders import C95, CONFIRMED, M95, MISSED, TIE_SET, add_confirm_round, append_config, write_run

RECORDED = Path(__file__).resolve().parents[1] / "data" / "run_demo"


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(RECORDED, target)
    return target


@pytest.fixture()
def confirmed(run: Path) -> Path:
    """The recorded run with a confirmation round appended (and its choice in summary.json)."""
    add_confirm_round(run, CONFIRMED, MISSED, lower_bound=("i1_b32_d0",))
    return run


def test_app_builds_with_callbacks(run: Path) -> None:
    app = create_app(run)
    # Every interactive output of the page has its callback (and nothing else does).
    assert sorted(app.callback_map) == sorted(
        [
            "..answer.children...pareto.figure...chosen.data..",
            "..compare-table-div.children...compare-curves.figure...compare-curves.style..",
            "..detail.children...detail-curves.figure...detail-breakdown.figure...detail-pbtxt.children...detail-id.data..",
            # The filters follow the data: options and values of each, and whether its group shows.
            (
                "..f-count.options...f-count.value...f-batch.options...f-batch.value...f-delay.options"
                "...f-delay.value...f-count-group.hidden...f-batch-group.hidden...f-delay-group.hidden.."
            ),
            "..heatmap.figure...resources.figure..",
            # The budget slider's bounds follow the latencies measured.
            "..budget.min...budget.max..",
            "compare-a.options",
            "compare-b.options",
            "confirm-figure.figure",
            "download.data",
            "plan.children",
            "version.data",
        ]
    )
    for output in (
        "answer",
        "pareto",
        "compare-curves",
        "detail",
        "heatmap",
        "plan",
        "download",
        "side-panel",
    ):
        assert _find(app.layout, output) is not None, output


def test_the_bootstrap_stylesheet_is_served_from_the_package(run: Path) -> None:
    """No CDN: the page links Bootstrap's CSS from the app's own assets, and the app serves it."""
    app = create_app(run)
    assert not app.config.external_stylesheets
    client = app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "/assets/bootstrap.min.css" in page and "cdn." not in page
    with client.get("/assets/bootstrap.min.css") as css:  # closes the file it streams from
        assert css.status_code == 200 and b"Bootstrap  v5.3" in css.data[:200]


def test_budget_slider_changes_the_answer(run: Path) -> None:
    board = Dashboard(run)
    panel, fig, chosen = board.answer(board.run.budget_ms, None, None, None)
    assert chosen == board.run.summary["best"]["config_id"]  # the sweep's own answer at its budget
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


def test_compare_shows_nothing_until_two_configs_are_picked(run: Path) -> None:
    board = Dashboard(run)
    a, b = board.run.configs["config_id"].iloc[:2]
    for picked, hint in (
        ((None, None), "Pick two configs"),
        ((a, None), f"compare with {a}"),
        ((None, b), f"compare with {b}"),
        ((a, a), "two different configs"),
    ):
        content, fig = board.compare(*picked, board.run.budget_ms)
        assert fig is None and hint in _text(content) and _find(content, "compare-table") is None, picked
        _, _, style = board.compare_view(*picked, board.run.budget_ms)
        assert style == {"display": "none"}  # the chart is not drawn: no empty axes
    table, fig, style = board.compare_view(a, b, board.run.budget_ms)
    assert _find(table, "compare-table") is not None and len(fig.data) == 4 and style == {}


def test_filter_options_grow_when_a_new_knob_value_appears(run: Path) -> None:
    app = create_app(run)
    board = app.board
    version = board.on_tick(1, None)
    shown = {key: _find(app.layout, element).options for key, element in FILTERS}
    before = board.options()
    assert 64 not in before["batches"] and 4 not in before["counts"] and 500 not in before["delays"]
    # The user cleared max batch 8; nothing changed on disk: the filters are left alone.
    batches = [v for v in before["batches"] if v != 8]
    state = (before["counts"], batches, before["delays"], shown["counts"], shown["batches"], shown["delays"])
    out = board.filter_options(version, *state)
    assert out[:6] == (dash.no_update,) * 6 and out[6:] == (False, False, False)

    append_config(
        run,
        "i1_b32_d0",
        "i4_b64_d500",
        {"instance_count": 4, "max_batch_size": 64, "max_queue_delay_us": 500},
    )
    version = board.on_tick(2, version)
    assert version is not dash.no_update
    out = board.filter_options(version, *state)
    count_opts, counts, batch_opts, batches, delay_opts, delays, *hidden = out
    assert [o["value"] for o in count_opts] == sorted(before["counts"] + [4]) == counts
    assert [o["value"] for o in batch_opts] == sorted(before["batches"] + [64])
    assert batches == sorted([v for v in before["batches"] if v != 8] + [64])  # 8 stays cleared
    assert [o["value"] for o in delay_opts] == sorted(before["delays"] + [500]) == delays
    assert hidden == [False, False, False]
    # The new config is among those shown, and its point is on the Pareto chart.
    _, shown_configs = board.filtered(counts, batches, delays)
    assert "i4_b64_d500" in set(shown_configs["config_id"])
    _, fig, _ = board.answer(board.run.budget_ms, counts, batches, delays)
    assert any(
        "i4_b64_d500" in [str(p[0]) for p in (t.customdata if t.customdata is not None else [])]
        for t in fig.data
    )


def test_the_budget_slider_grows_with_the_latencies_measured(run: Path) -> None:
    app = create_app(run)
    board = app.board
    version = board.on_tick(1, None)
    slider = _find(app.layout, "budget")
    assert board.budget_bounds(version) == (slider.min, slider.max)
    # A running sweep measures a level far slower than any before it.
    table = pd.read_csv(run / "measurements.csv")
    slow = table.iloc[[0]].copy()
    slow["p99_ms"] = slider.max * 10
    slow.to_csv(run / "measurements.csv", mode="a", header=False, index=False)
    version = board.on_tick(2, version)
    low, high = board.budget_bounds(version)
    assert low == slider.min and high >= slider.max * 10


def test_follow_selection() -> None:
    shown = filter_choices("delays", [DELAY_OFF, 0])
    assert shown[0] == {"label": "off", "value": DELAY_OFF}
    # Kept where still valid, a cleared value stays cleared, a new one is selected, a gone one drops.
    assert follow_selection([0, 2000], shown, [DELAY_OFF]) == [2000]
    assert follow_selection([DELAY_OFF, 0, 2000], shown, [0]) == [0, 2000]
    assert follow_selection([1, 2], None, None) == [1, 2]  # no options before: all shown


def test_a_page_with_an_older_version_gets_the_current_one(run: Path) -> None:
    board = Dashboard(run)
    current = board.on_tick(1, None)
    assert board.on_tick(2, [0] * len(current)) == current  # another tab's tick read the change first


def test_a_table_caught_half_written_keeps_the_last_data(run: Path) -> None:
    board = Dashboard(run)
    before = len(board.run.measurements)
    good = (run / "measurements.csv").read_bytes()
    (run / "measurements.csv").write_text('config_id,load_level\n"unterminated')  # mid-rewrite
    assert board.refresh() is False and len(board.run.measurements) == before
    (run / "measurements.csv").write_bytes(good + good.split(b"\n", 1)[1])  # written again, longer
    assert board.refresh() is True and len(board.run.measurements) == 2 * before


def test_a_pipeline_hides_the_batch_and_delay_filters(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(PIPELINE, run)
    app = create_app(run)
    assert _find(app.layout, "f-count-group").hidden is False
    assert _find(app.layout, "f-batch-group").hidden is True
    assert _find(app.layout, "f-delay-group").hidden is True
    out = app.board.filter_options(None, None, None, None, None, None, None)
    assert out[6:] == (False, True, True)


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
    (tmp_path / "measurements.csv").write_text('not,a\ntable\n"')
    with pytest.raises(UsageError):
        create_app(tmp_path)


def test_tie_set_panel_at_the_sweeps_budget(confirmed: Path) -> None:
    board = Dashboard(confirmed)
    panel, fig, chosen = board.answer(board.run.budget_ms, None, None, None)
    best, tie_set, reason = choice(board.run.configs, board.run.measurements, 99)
    # The confirmed pick, as in summary.json, not the search's best capacity (i1_b8_d2000).
    assert chosen == best["config_id"] == board.run.summary["best"]["config_id"] == "i1_b32_d0"
    assert tie_set == TIE_SET and _find(panel, "tie-set").children == ", ".join(TIE_SET)
    assert "within noise of each other" in _text(panel) and f"Why: {reason}." in _text(panel)
    stats = confirmation_stats(board.run.measurements).set_index("config_id").loc["i1_b32_d0"]
    assert _find(panel, "capacity-shown").children == (
        f"≥ {stats['capacity_rps']:,.0f} req/s (95 % CI "
        f"{stats['ci_low_rps']:,.0f}..{stats['ci_high_rps']:,.0f}, 3 rounds)"
    )
    assert _find(panel, "tie-set-note") is None
    assert "chosen: i1_b32_d0" in [t.name for t in fig.data]


def test_tie_set_is_named_as_the_sweeps_at_another_budget(confirmed: Path) -> None:
    board = Dashboard(confirmed)
    panel, _, chosen = board.answer(9.0, None, None, None)
    m, c = board.run.measurements, board.run.configs
    assert chosen == choose_at_budget(m, c, 9.0, board.run.percentile, board.run.confidence)["config_id"]
    assert _find(panel, "tie-set") is None
    note = _text(_find(panel, "tie-set-note"))
    assert "i1_b32_d0, i2_b8_d2000" in note and "sweep's budget of 10 ms" in note


def test_an_older_run_has_no_tie_set(run: Path) -> None:
    panel, _, _ = Dashboard(run).answer(10.0, None, None, None)
    assert _find(panel, "tie-set") is None and "No confirmation round (yet)" in _text(panel)


def test_confirmation_figure(confirmed: Path, tmp_path: Path) -> None:
    app = create_app(confirmed)
    assert _find(app.layout, "confirm-figure") is not None
    fig = app.board.confirmation()
    assert (
        "chosen: i1_b32_d0" in [t.name for t in fig.data]
        and "tie set: i1_b32_d0, i2_b8_d2000" in fig.layout.title.text
    )
    samples = next(t for t in fig.data if t.name == "round sample (missed the budget)")
    assert list(samples.y) == [3900.0, 4050.0]
    legacy = shutil.copytree(RECORDED, tmp_path / "legacy")
    assert not Dashboard(legacy).confirmation().data  # an older run: a note, no traces


def test_planner_uses_the_confirmed_capacity_at_the_sweeps_budget(confirmed: Path) -> None:
    board = Dashboard(confirmed)
    mean = float(
        confirmation_stats(board.run.measurements).set_index("config_id").loc["i1_b32_d0", "capacity_rps"]
    )
    out = _text(board.plan(mean * 2.5, None, "i1_b32_d0", board.run.budget_ms))
    assert (
        f"serves {mean:.1f} req/s" in out
        and "the confirmation round's mean" in out
        and "3 server replicas" in out
    )
    elsewhere = _text(board.plan(1000, None, "i1_b32_d0", 9.0))
    assert "the search's capacity" in elsewhere
    # Re-measured but not counted (met the budget in 1 of 3 rounds): its search capacity.
    search = float(board.run.configs.set_index("config_id").loc["i1_b8_d2000", "capacity_rps"])
    assert f"serves {search:.1f} req/s" in _text(board.plan(1000, None, "i1_b8_d2000", board.run.budget_ms))


def test_a_p95_run_is_judged_and_labelled_p95(tmp_path: Path) -> None:
    board = Dashboard(write_run(tmp_path / "run", M95, C95, {"finished": True}, percentile=95, budget_ms=5.0))
    panel, fig, chosen = board.answer(5.0, None, None, None)
    assert chosen == "a" and "with p95 4.00 ms" in _text(panel)  # judged on p99, b would win
    assert fig.layout.yaxis.title.text == "p95 latency (ms)"
    table, _ = board.compare("a", "b", 5.0)
    assert "p95 ms @ 5 ms" in _text(table)
    assert board.budget_range() == (0.0, 10.0)  # from the p95 column (p99 reaches 20 ms)


PIPELINE = Path(__file__).resolve().parents[1] / "data" / "run_pipeline"  # a recorded ensemble sweep


def _text(component: object) -> str:
    """All text inside a Dash component tree."""
    if isinstance(component, (str, int, float)):
        return str(component)
    children = getattr(component, "children", None)
    if children is None:
        return ""
    if not isinstance(children, (list, tuple)):
        children = [children]
    return " ".join(_text(c) for c in children)


def _find(component: object, id_: str) -> object | None:
    if getattr(component, "id", None) == id_:
        return component
    children = getattr(component, "children", None)
    for child in (
        children if isinstance(children, (list, tuple)) else ([children] if children is not None else [])
    ):
        found = _find(child, id_)
        if found is not None:
            return found
    return None


def test_a_pipeline_run_shows_every_model_its_steps_and_downloads(tmp_path: Path) -> None:
    import urllib.parse

    run = tmp_path / "run"
    shutil.copytree(PIPELINE, run)
    create_app(run)
    board = Dashboard(run)
    assert board.pipeline and board.options()["batches"] == []
    panel, _, chosen = board.answer(None, board.options()["counts"], [], [])
    best = pd.read_csv(run / "configs.csv").set_index("config_id").loc[chosen]
    text = _text(panel)
    for name in ("preprocess", "classifier"):
        assert (
            f"{name}: instances {int(best[f'{name}.instance_count'])}, max batch "
            f"{int(best[f'{name}.max_batch_size'])}" in text
        )
    facts, _, _, pbtxt, detail_id = board.detail(None, chosen, None)
    assert (
        detail_id == chosen and "# preprocess/config.pbtxt" in pbtxt and "# classifier/config.pbtxt" in pbtxt
    )
    neck = _find(facts, "bottleneck-step")
    assert neck is not None and neck.children == best["bottleneck_step"]
    for name in ("preprocess", "classifier"):
        link = _find(facts, f"download-{name}")
        assert link is not None and link.download == f"{name}.config.pbtxt"
        config = parse_pbtxt(urllib.parse.unquote(link.href.split(",", 1)[1]))
        assert config.name == name and knobs_of(config).instance_count == int(best[f"{name}.instance_count"])
    # Filtering by total instances still works; the batch and delay filters do not apply.
    fewest = min(board.options()["counts"])
    _m, c = board.filtered([fewest], [], [])
    assert not c.empty and set(c["instance_count"]) == {fewest}
