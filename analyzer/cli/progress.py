"""Progress of long work on stderr as plain lines: a sweep's (the runner's Events) and a
profile's (its callbacks), one line per config, level or window, for logs, CI and the tests that
read them. analyzer.cli.progress_live adds a live panel under the same lines when stderr is a
terminal, and chooses between the two. Each form is a context manager (the plain one does
nothing on entry and exit) so that callers treat both alike.
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Any

import click

from analyzer.config.pipeline import AnyCandidate
from analyzer.judge.verdict import Status, Verdict
from analyzer.load.shapes import LoadSpec
from analyzer.measure.levels import MeasureSettings
from analyzer.schema import percentile_field
from analyzer.stats.measurement import Measurement, WindowStat, level_text
from analyzer.sweep.loop import Events


def time_left_s(elapsed_s: float, done: int, total: int, time_budget_s: float | None = None) -> float | None:
    """Seconds left at the pace so far: `elapsed_s` for `done` items, `total` in all; capped by
    what is left of a time budget. None before anything is done (no pace yet) unless the time
    budget alone says."""
    left = elapsed_s / done * max(0, total - done) if done > 0 else None
    if time_budget_s is not None:
        budget_left = max(0.0, time_budget_s - elapsed_s)
        left = budget_left if left is None else min(left, budget_left)
    return left


def clock(seconds: float | None) -> str:
    """'1:05' or '1:02:05' (hours), '?' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def knobs_text(cand: AnyCandidate) -> str:
    """A config's knobs as one line (a pipeline's: each tuned model's)."""
    return "; ".join(
        (f"{name}: " if name else "")
        + f"instances {c.instance_count}, max_batch_size {c.max_batch_size}, queue delay "
        + ("-" if c.max_queue_delay_us is None else f"{c.max_queue_delay_us} us")
        for name, c in cand.parts
    )


class Plain:
    """The context-manager side of the plain forms (nothing to start or stop), and their lines."""

    quiet = False

    def _echo(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=True)

    def say(self, text: str) -> None:
        """A message shown even when quiet (Ctrl-C's answer, say)."""
        click.echo(text, err=True)

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


# -- profile ---------------------------------------------------------------------------------------


class ProfileProgress(Plain):
    """Plain progress lines of `tritune profile`: level, window, throughput, p99, time left."""

    def __init__(self, total_levels: int, settings: MeasureSettings, quiet: bool) -> None:
        self.total = total_levels
        self.settings = settings
        self.quiet = quiet
        self.done = 0

    def left_s(self, index: int, stable: bool) -> float:
        """At most this many seconds are left after window `index` of the current level."""
        left_levels = self.total - self.done - 1
        window = self.settings.longest_window_s
        per_level = self.settings.warmup_s + window * (self.settings.min_windows + 1)
        this_level = max(0, self.settings.max_windows - index) * window * (0 if stable else 1)
        return left_levels * per_level + this_level

    def window(self, load: LoadSpec, index: int, stat: WindowStat, stable: bool) -> None:
        """One line per measurement window."""
        self._echo(
            f"[{self.done + 1}/{self.total}] {load.describe():<24} window {index:>2}: "
            f"{stat.throughput_rps:8.1f} req/s  p99 {stat.p99_ms:8.2f} ms  "
            f"{'stable' if stable else 'settling'}  (at most ~{self.left_s(index, stable):.0f} s left)"
        )

    def level(self, m: Measurement) -> None:
        """One line per finished level."""
        self.done += 1
        flag = "" if m.stable else "  UNSTABLE (windows never agreed; numbers are from the last 3)"
        if m.client_bound:
            flag += f"  CLIENT BOUND ({m.client_bound_reason})"
        self._echo(
            f"  -> {m.throughput_rps:.1f} req/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms "
            f"(95% CI {m.p99_ci_low_ms:.2f}..{m.p99_ci_high_ms:.2f}), errors {m.errors}{flag}"
        )

    def playing(self, load: LoadSpec) -> None:
        """A schedule is about to be played."""
        assert load.duration_s is not None
        self._echo(f"playing {load.describe()}: {load.duration_s:.0f} s")

    def second(self, elapsed: float, length: float, finished: int) -> None:
        """A schedule being played: a line every 5 s of it."""
        if int(elapsed) % 5 == 0 or elapsed >= length:
            self._echo(f"    {elapsed:5.0f} / {length:.0f} s: {finished} requests finished")


# -- sweep -----------------------------------------------------------------------------------------


class SweepProgress(Plain):
    """Plain sweep progress on stderr: one line per config and per load level, with time left."""

    def __init__(self, budget_ms: float, percentile: float, quiet: bool) -> None:
        self.budget_ms = budget_ms
        self.label = f"p{percentile:g}"
        self.percentile = percentile
        self.quiet = quiet
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self.best: tuple[float, str] | None = None  # best capacity so far and its config

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.started
        left = time_left_s(elapsed, self.done, self.total) if self.total > self.done else None
        return f"elapsed {elapsed:.0f} s" if left is None else f"elapsed {elapsed:.0f} s, ~{left:.0f} s left"

    def events(self) -> Events:
        """The runner callbacks that print this progress."""
        return Events(
            config_start=self.config_start,
            level=self.level,
            config_done=self.config_done,
            message=self.message,
            notice=self.say,
            confirm_start=self.confirm_start,
            confirm=self.confirm,
            playing=self.playing,
        )

    def _value(self, m: Measurement) -> float:
        return float(getattr(m, percentile_field(self.percentile)))

    def confirm_start(self, cands: list[AnyCandidate], rounds: int) -> None:
        """The confirmation round begins."""
        self._echo(
            f"[confirm] re-measuring the top {len(cands)} at their capacity levels, {rounds} "
            f"interleaved rounds: {', '.join(c.config_id for c in cands)}  ({self._eta()})"
        )

    def confirm(self, cand: AnyCandidate, round_: int, m: Measurement, verdict: Verdict) -> None:
        """One confirmation measurement finished."""
        self._echo(
            f"    round {round_} {cand.config_id} at {level_text(m.load_mode, m.load_level)}: "
            f"{m.throughput_rps:8.1f} req/s  {self.label} {self._value(m):8.2f} ms  "
            f"{'meets' if verdict.meets else verdict.status}"
        )

    def config_start(self, cand: AnyCandidate, number: int, total: int) -> None:
        """A config is about to be loaded."""
        self.total = max(total, number)
        self._echo(
            f"[config {number}/{self.total}] {cand.config_id}: {knobs_text(cand)}  ({self._eta()}"
            + (f"; best so far {self.best[1]} at {self.best[0]:.1f} req/s)" if self.best else ")")
        )

    def level(self, cand: AnyCandidate, m: Measurement, verdict: Verdict) -> None:
        """A load level was measured."""
        status: str = Status.MEETS if verdict.meets else verdict.status
        if verdict.status == Status.CLIENT_BOUND:
            status = verdict.reason  # names the fix: more --workers or a separate load machine
        worst = f"  worst minute {m.worst_minute_ms:.2f} ms" if math.isfinite(m.worst_minute_ms) else ""
        where = level_text(m.load_mode, m.load_level)
        self._echo(
            f"    {where}: {m.throughput_rps:8.1f} req/s  {self.label} {self._value(m):8.2f} ms{worst}"
            f"  {status}  ({self._eta()})"
        )

    def playing(
        self, cand: AnyCandidate, load: LoadSpec, elapsed: float, length: float, finished: int
    ) -> None:
        """A schedule is being played: a line every 10 s of it."""
        if int(elapsed) % 10 == 0 and elapsed < length:
            self._echo(
                f"    {load.describe()}: {elapsed:4.0f} / {length:.0f} s played, {finished} requests "
                f"finished ({self._eta()})"
            )

    def config_done(self, cand: AnyCandidate, row: dict[str, Any]) -> None:
        """A config finished (measured, pruned or failed)."""
        self.done += 1
        if (
            row["status"] != "failed"
            and row["capacity_rps"] > 0
            and (self.best is None or row["capacity_rps"] > self.best[0])
        ):
            self.best = (float(row["capacity_rps"]), str(row["config_id"]))
        if row["status"] == "failed":
            self._echo(f"    -> failed: {row['error']}")
        elif row["capacity_rps"] > 0:
            # configs.csv holds the p99 at the capacity level (and at the closest level below),
            # whatever the budget's percentile: so these lines say p99, not the budget's label.
            bound = ">= " if row.get("capacity_lower_bound") else ""
            pruned = "  [pruned]" if row["status"] == "pruned" else ""
            step = f"; bottleneck step: {row['bottleneck_step']}" if row.get("bottleneck_step") else ""
            self._echo(
                f"    -> capacity {bound}{row['capacity_rps']:.1f} req/s at "
                f"{level_text(row['load_mode'], row['capacity_level'])} "
                f"(p99 {row['p99_ms']:.2f} ms){pruned}{step}"
            )
        else:
            self._echo(
                f"    -> no load level met the budget of {self.budget_ms:g} ms "
                f"(best p99 {row['closest_p99_ms']:.2f} ms)"
            )

    def message(self, text: str) -> None:
        """A note from the runner."""
        self._echo(f"    note: {text}")
