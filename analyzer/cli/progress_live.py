"""Live progress on a terminal: the plain progress lines (analyzer.cli.progress) with a rich panel
under them that shows the current config and load level, a bar, the time left and the best so
far. `sweep_progress` and `profile_progress` choose the live form when stderr is a terminal and
the plain lines otherwise. The panel runs inside the object's `with` block and is gone when it
ends (the lines stay), also on Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from analyzer.cli.progress import ProfileProgress, SweepProgress, clock, knobs_text, time_left_s
from analyzer.config.pipeline import AnyCandidate, JointCandidate
from analyzer.judge.verdict import Verdict, budget_verdict
from analyzer.load.shapes import LoadSpec
from analyzer.measure.levels import MeasureSettings
from analyzer.stats.measurement import Measurement, WindowStat, level_text
from analyzer.sweep.loop import Events

BAR_WIDTH = 40


class _Panel:
    """The live forms' shared part: a rich Live panel on stderr, with the plain lines printed
    above it (so a terminal keeps the same history a log gets)."""

    title = "tritune"

    def _echo(self, text: str) -> None:
        # The plain forms' lines, printed above the panel (before Plain._echo in the MRO).
        self._print(text)

    def _start_live(self) -> None:
        self.console = Console(stderr=True)
        self.live = Live(
            console=self.console,
            get_renderable=self._panel,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=True,
        )

    def _print(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)

    def say(self, text: str) -> None:
        """A message above the panel. Through the panel's console: click.echo would write past
        the Live's redirect of stderr (to the stream's buffer) and the panel would overwrite it."""
        self._print(text)

    def _rows(self) -> list[tuple[RenderableType, RenderableType]]:
        raise NotImplementedError

    def _panel(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for label, value in self._rows():
            grid.add_row(label, value)
        return Panel(grid, title=self.title, title_align="left", expand=False)

    def __enter__(self) -> Any:
        self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.live.refresh()
        self.live.stop()


def _bar(label: str, done: float, total: float | None, text: str) -> tuple[str, RenderableType]:
    """A panel row: a bar of `done` out of `total` (pulsing while the total is unknown), then `text`."""
    cell = Table.grid(padding=(0, 1))
    bar = ProgressBar(total=total if total else None, completed=done, width=BAR_WIDTH, pulse=not total)
    cell.add_row(bar, text)
    return label, cell


class LiveProfileProgress(_Panel, ProfileProgress):
    """ProfileProgress with a live panel: the level and window being measured, a bar over the
    levels (over the seconds of a schedule), the time left, and the best level so far (the most
    throughput; with a budget, the most that met it)."""

    title = "tritune profile"

    def __init__(self, total_levels: int, settings: MeasureSettings) -> None:
        ProfileProgress.__init__(self, total_levels, settings, quiet=False)
        self.started = time.monotonic()
        self.now = "warming up"
        self.left: float | None = None
        self.best: Measurement | None = None
        self.schedule: tuple[float, float, int] | None = None  # seconds played, length, finished
        self._start_live()

    def window(self, load: LoadSpec, index: int, stat: WindowStat, stable: bool) -> None:
        """The window's line, and the panel's current level."""
        super().window(load, index, stat, stable)
        self.now = (
            f"{load.describe()}, window {index}: {stat.throughput_rps:.1f} req/s, "
            f"p99 {stat.p99_ms:.2f} ms, "
            f"{'stable' if stable else 'settling'}"
        )
        self.left = self.left_s(index, stable)

    def level(self, m: Measurement) -> None:
        """The level's line; the best so far."""
        super().level(m)
        budget = self.settings.budget_ms
        if (budget is None or budget_verdict(m, budget).meets) and (
            self.best is None or m.throughput_rps > self.best.throughput_rps
        ):
            self.best = m
        self.now = "next level: warming up" if self.done < self.total else "done"

    def second(self, elapsed: float, length: float, finished: int) -> None:
        """The schedule's line every 5 s; the panel every second."""
        super().second(elapsed, length, finished)
        self.schedule = (elapsed, length, finished)
        self.left = max(0.0, length - elapsed)

    def _rows(self) -> list[tuple[RenderableType, RenderableType]]:
        elapsed = time.monotonic() - self.started
        if self.schedule is not None:
            played, length, finished = self.schedule
            return [
                ("playing", f"{finished} requests finished"),
                _bar(
                    "played",
                    played,
                    length,
                    f"{played:.0f} / {length:.0f} s  elapsed {clock(elapsed)}  ~{clock(self.left)} left",
                ),
            ]
        level = f"{min(self.done + 1, self.total)}/{self.total}: {self.now}"
        # The bar counts load levels finished out of those asked for.
        rows: list[tuple[RenderableType, RenderableType]] = [
            ("level", level),
            _bar(
                "levels",
                self.done,
                self.total,
                f"{self.done}/{self.total}  elapsed {clock(elapsed)}  at most ~{clock(self.left)} left",
            ),
        ]
        if self.best is not None:
            b = self.best
            rows.append(
                (
                    "best",
                    f"{b.throughput_rps:.1f} req/s at {level_text(b.load_mode, b.load_level)} "
                    f"(p99 {b.p99_ms:.2f} ms)",
                )
            )
        return rows


class LiveSweepProgress(_Panel, SweepProgress):
    """SweepProgress with a live panel: the config being measured and its load level (window by
    window), a bar over the configs, the time left and the best config so far.

    The bar counts configs finished (this run and the runs it resumes) out of the trial budget:
    `max_trials` when the spec sets one, else the search's own upper bound on the configs it may
    still measure (the runner's `config_start` total: the space left, or for optuna the configs
    that could still beat the best), which shrinks as the search learns; it stops by itself.
    During the confirmation round the bar counts its measurements instead. The time left is at
    this run's pace, capped by the time budget."""

    title = "tritune sweep"

    def __init__(
        self, budget_ms: float, percentile: float, max_trials: int | None, time_budget_s: float | None
    ) -> None:
        SweepProgress.__init__(self, budget_ms, percentile, quiet=False)
        self.max_trials = max_trials
        self.time_budget_s = time_budget_s
        self.finished = 0  # configs finished, counting those of resumed runs
        self.config = "starting"
        self.now = ""
        self.confirming: tuple[int, int] | None = None  # measurements done, in all
        self.confirm_started = 0.0
        self._start_live()

    def events(self) -> Events:
        """The plain callbacks, and each window for the panel."""
        events = super().events()
        events.window = self.window
        return events

    def config_start(self, cand: AnyCandidate | JointCandidate, number: int, total: int) -> None:
        """The config's line; the panel's current config."""
        super().config_start(cand, number, total)
        self.finished = number - 1
        self.config = f"{number}/{self.total}  {cand.config_id}: {knobs_text(cand)}"
        self.now = "loading the config"

    def window(
        self, cand: AnyCandidate | JointCandidate, load: LoadSpec, index: int, stat: WindowStat, stable: bool
    ) -> None:
        """The panel's current load level."""
        self.now = (
            f"{load.describe()}, window {index}: {stat.throughput_rps:.1f} req/s, "
            f"p99 {stat.p99_ms:.2f} ms, {'stable' if stable else 'settling'}"
        )

    def level(self, cand: AnyCandidate | JointCandidate, m: Measurement, verdict: Verdict) -> None:
        """The level's line; the panel's last level."""
        super().level(cand, m, verdict)
        self.now = (
            f"{level_text(m.load_mode, m.load_level)}: {m.throughput_rps:.1f} req/s, "
            f"{self.label} {self._value(m):.2f} ms, {'meets' if verdict.meets else verdict.status}"
        )

    def playing(
        self,
        cand: AnyCandidate | JointCandidate,
        load: LoadSpec,
        elapsed: float,
        length: float,
        finished: int,
    ) -> None:
        """The schedule's line every 10 s; the panel every second."""
        super().playing(cand, load, elapsed, length, finished)
        self.now = f"{load.describe()}: {elapsed:.0f} / {length:.0f} s played, {finished} requests finished"

    def config_done(self, cand: AnyCandidate | JointCandidate, row: dict[str, Any]) -> None:
        """The config's outcome line; the bar moves."""
        super().config_done(cand, row)
        self.finished += 1
        self.now = "choosing the next config"

    def confirm_start(self, cands: list[AnyCandidate | JointCandidate], rounds: int) -> None:
        """The confirmation round's line; the bar now counts its measurements."""
        super().confirm_start(cands, rounds)
        self.confirming = (0, len(cands) * rounds)
        self.confirm_started = time.monotonic()
        self.config = f"confirmation round: the top {len(cands)}, {rounds} rounds"

    def confirm(
        self, cand: AnyCandidate | JointCandidate, round_: int, m: Measurement, verdict: Verdict
    ) -> None:
        """One confirmation measurement's line."""
        super().confirm(cand, round_, m, verdict)
        if self.confirming is not None:
            self.confirming = (self.confirming[0] + 1, self.confirming[1])
        self.now = f"round {round_}: {cand.config_id} at {level_text(m.load_mode, m.load_level)}"

    def _rows(self) -> list[tuple[RenderableType, RenderableType]]:
        elapsed = time.monotonic() - self.started
        if self.confirming is not None:
            done, total = self.confirming
            left = time_left_s(time.monotonic() - self.confirm_started, done, total)
            bar = _bar("confirming", done, total, f"{done}/{total} measurements  elapsed {clock(elapsed)}")
        else:
            budget = "max_trials" if self.max_trials is not None else "the search's bound; it stops by itself"
            # The pace is this run's: configs of a resumed run took their time in an earlier one.
            left = time_left_s(
                elapsed, self.done, self.done + max(0, self.total - self.finished), self.time_budget_s
            )
            bar = _bar(
                "configs",
                self.finished,
                self.total,
                f"{self.finished}/{self.total} ({budget})  elapsed {clock(elapsed)}",
            )
        rows: list[tuple[RenderableType, RenderableType]] = [
            ("config", self.config),
            ("level", self.now or "-"),
            bar,
            ("time left", "known after the first config" if left is None else f"~{clock(left)}"),
        ]
        if self.best is not None:
            rows.append(("best so far", f"{self.best[1]} at {self.best[0]:.1f} req/s"))
        return rows


def profile_progress(total_levels: int, settings: MeasureSettings, quiet: bool) -> ProfileProgress:
    """Live progress when stderr is a terminal, else plain lines (none when quiet)."""
    if not quiet and sys.stderr.isatty():
        return LiveProfileProgress(total_levels, settings)
    return ProfileProgress(total_levels, settings, quiet)


def sweep_progress(
    budget_ms: float,
    percentile: float,
    quiet: bool,
    max_trials: int | None = None,
    time_budget_s: float | None = None,
) -> SweepProgress:
    """Live progress when stderr is a terminal, else plain lines (none when quiet)."""
    if not quiet and sys.stderr.isatty():
        return LiveSweepProgress(budget_ms, percentile, max_trials, time_budget_s)
    return SweepProgress(budget_ms, percentile, quiet)
