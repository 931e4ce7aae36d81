"""Progress on stderr (no server): the plain lines logs and tests read, the time left, and the
live panel's content (rendered to a string, as a terminal would show it)."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from analyzer.cli.progress import ProfileProgress, SweepProgress, clock, time_left_s
from analyzer.cli.progress_live import (
    LiveProfileProgress,
    LiveSweepProgress,
    profile_progress,
    sweep_progress,
)
from analyzer.config.modelconfig import Candidate
from analyzer.judge.verdict import Verdict
from analyzer.load.shapes import LoadSpec
from analyzer.measure.levels import MeasureSettings
from analyzer.stats.measurement import Measurement, WindowStat
from tests.helpers import measurement

CAND = Candidate(2, 8, 500)
MEETS = Verdict(True, "meets", "")


def level(conc: float, rps: float, p99: float) -> Measurement:
    return measurement(
        p99,
        load_level=conc,
        throughput_rps=rps,
        p50_ms=p99 / 2,
        p90_ms=p99 * 0.8,
        p95_ms=p99 * 0.9,
        mean_ms=p99 / 2,
        requests=1000,
    )


def row(config_id: str, capacity: float, status: str = "ok") -> dict[str, object]:
    return {
        "config_id": config_id,
        "status": status,
        "capacity_rps": capacity,
        "load_mode": "concurrency",
        "capacity_level": 16.0,
        "p99_ms": 4.25,
        "error": "",
        "closest_p99_ms": 4.25,
    }


def render(panel: object) -> str:
    out = io.StringIO()
    Console(file=out, width=140, color_system=None).print(panel)
    return out.getvalue()


def test_time_left_at_the_pace_so_far_capped_by_the_time_budget() -> None:
    assert time_left_s(60.0, 2, 6) == pytest.approx(120.0)
    assert time_left_s(60.0, 2, 6, time_budget_s=100.0) == pytest.approx(40.0)
    assert time_left_s(60.0, 0, 6) is None  # no pace yet
    assert time_left_s(60.0, 0, 6, time_budget_s=90.0) == pytest.approx(30.0)
    assert time_left_s(60.0, 6, 6) == 0.0
    assert (clock(65), clock(3725), clock(None), clock(math.inf)) == ("1:05", "1:02:05", "?", "?")


def test_a_p95_sweep_labels_the_config_rows_p99_value_p99(capsys: pytest.CaptureFixture[str]) -> None:
    progress = SweepProgress(10.0, 95.0, quiet=False)
    with progress:
        events = progress.events()
        events.config_start(CAND, 1, 4)
        events.level(CAND, level(16, 1234.5, 4.25), MEETS)
        events.config_done(CAND, row(CAND.config_id, 1234.5))
    lines = capsys.readouterr().err.splitlines()
    # The level line shows the budget's percentile (p95 of a p99 of 4.25 is 3.83 in the builder)...
    assert "  p95     3.83 ms  meets" in lines[1]
    # ...and the config's line the p99 its configs.csv row holds, labelled as such.
    assert lines[2] == "    -> capacity 1234.5 req/s at concurrency 16 (p99 4.25 ms)"


def test_plain_sweep_lines(capsys: pytest.CaptureFixture[str]) -> None:
    progress = SweepProgress(10.0, 99.0, quiet=False)
    with progress:
        events = progress.events()
        events.config_start(CAND, 1, 4)
        events.level(CAND, level(16, 1234.5, 4.25), MEETS)
        events.config_done(CAND, row(CAND.config_id, 1234.5))
        events.config_start(Candidate(1, 8, 0), 2, 4)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(
        f"[config 1/4] {CAND.config_id}: instances 2, max_batch_size 8, queue delay 500 us  (elapsed "
    )
    assert lines[1].startswith("    concurrency 16:   1234.5 req/s  p99     4.25 ms  meets  (elapsed ")
    assert lines[2] == "    -> capacity 1234.5 req/s at concurrency 16 (p99 4.25 ms)"
    assert lines[3].startswith("[config 2/4]")
    assert lines[3].endswith(f"; best so far {CAND.config_id} at 1234.5 req/s)")
    assert events.window is None  # plain lines have no line per window


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    progress = sweep_progress(10.0, 99.0, quiet=True)
    progress.config_start(CAND, 1, 4)
    profile = profile_progress(2, MeasureSettings(), quiet=True)
    profile.level(level(1, 10.0, 1.0))
    assert capsys.readouterr().err == ""
    assert type(progress) is SweepProgress and type(profile) is ProfileProgress  # not a terminal


def test_plain_profile_lines(capsys: pytest.CaptureFixture[str]) -> None:
    settings = MeasureSettings(window_s=1.0, warmup_s=0.5, max_windows=5)
    progress = ProfileProgress(2, settings, quiet=False)
    progress.window(LoadSpec("concurrency", 4), 2, WindowStat(0.0, 1.0, 500, 500.0, 3.5), False)
    progress.level(level(4, 500.0, 3.5))
    err = capsys.readouterr().err.splitlines()
    # One more level of warm-up and 4 windows, plus the 3 windows this one may still take.
    assert err[0] == (
        f"[1/2] {'concurrency 4':<24} window  2:    500.0 req/s  p99     3.50 ms  "
        "settling  (at most ~8 s left)"
    )
    assert err[1] == "  -> 500.0 req/s, p50 1.75 ms, p99 3.50 ms (95% CI 3.15..3.85), errors 0"


def test_live_sweep_panel_shows_config_level_bar_time_left_and_best() -> None:
    live = LiveSweepProgress(10.0, 99.0, max_trials=12, time_budget_s=None)
    events = live.events()
    assert events.window is not None
    events.config_start(CAND, 1, 12)
    events.config_done(CAND, row(CAND.config_id, 900.0))
    other = Candidate(1, 8, 0)
    events.config_start(other, 2, 12)
    events.window(other, LoadSpec("concurrency", 16), 3, WindowStat(0.0, 1.0, 900, 1500.0, 4.0), False)
    text = render(live._panel())
    assert f"2/12  {other.config_id}: instances 1, max_batch_size 8, queue delay 0 us" in text
    assert "concurrency 16, window 3: 1500.0 req/s, p99 4.00 ms, settling" in text
    assert "1/12 (max_trials)" in text
    assert f"{CAND.config_id} at 900.0 req/s" in text and "best so far" in text
    assert "time left" in text


def test_live_sweep_without_max_trials_names_the_search_bound_and_counts_confirmations() -> None:
    live = LiveSweepProgress(10.0, 99.0, max_trials=None, time_budget_s=None)
    live.config_start(CAND, 3, 7)
    assert "2/7 (the search's bound; it stops by itself)" in render(live._panel())
    live.confirm_start([CAND], 3)
    live.confirm(CAND, 1, level(16, 1000.0, 4.0), MEETS)
    text = render(live._panel())
    assert "1/3 measurements" in text and "confirmation round: the top 1, 3 rounds" in text


def test_live_profile_panel_keeps_the_best_level_that_met_the_budget() -> None:
    settings = MeasureSettings(window_s=1.0, warmup_s=0.5, max_windows=5, budget_ms=5.0)
    live = LiveProfileProgress(3, settings)
    live.level(level(1, 400.0, 1.0))
    live.level(level(2, 800.0, 20.0))  # over the budget: more throughput, but not the best
    live.window(LoadSpec("concurrency", 4), 1, WindowStat(0.0, 1.0, 300, 300.0, 2.0), False)
    text = render(live._panel())
    assert "3/3: concurrency 4, window 1: 300.0 req/s, p99 2.00 ms, settling" in text
    assert "2/3  elapsed" in text
    assert "400.0 req/s at concurrency 1 (p99 1.00 ms)" in text
