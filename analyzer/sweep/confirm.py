"""The confirmation round: the top configs re-measured at their capacity levels, interleaved
(A B C A B C ...), so that slow drift of a shared machine hits every config alike.

Which configs, at which levels, and what a resumed run still has to measure come from the tables
alone (`confirm_plan`, `next_confirmation`). `ConfirmationRound` runs the round through the
functions it is given (`ConfirmIO`): the runner's load configs and measure on a server, a unit
test's measure nothing real. In a shared study one worker claims the round and runs it against
its own server; the others wait for it (through analyzer.store.study_tables's claims). The worker running
it keeps the claim's beat fresh (a heartbeat thread); a waiting worker that sees the beat stop
for longer than the grace period, or the claim given back (its holder stopped or failed), takes
the round over and continues it from the rounds already measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analyzer.config.pipeline import candidate_from_row
from analyzer.errors import ClaimLostError, DatabaseError
from analyzer.judge.confirm_stats import confirm_rows
from analyzer.judge.verdict import Verdict
from analyzer.search.claims import SHARED_POLL_S
from analyzer.search.heartbeat import Heartbeat
from analyzer.stats.measurement import Measurement

# Shared studies: the claims that say which worker runs the round and that it ended.
from analyzer.store.study_tables import CONFIRM_CLAIM, CONFIRMED_CLAIM, SharedTables

Plan = list[tuple[Any, float]]  # (candidate, its capacity level), in the round's order


def confirm_plan(
    configs: pd.DataFrame, measurements: pd.DataFrame, top: int
) -> tuple[Plan, set[tuple[str, int]]]:
    """The confirmation round's work: the `top` configs by search capacity (that met the budget)
    with their capacity levels, then any config the round already measured that is no longer in
    the top (another worker's late result pushed it out; it keeps its rounds, so that the round
    compares complete samples), and the (config, round) pairs already measured (a resumed run
    measures only the rest)."""
    if configs.empty or top <= 0:
        return [], set()
    cap = pd.to_numeric(configs["capacity_rps"], errors="coerce").fillna(0.0)
    ok = configs[configs["status"].isin(["ok", "pruned"]) & (cap > 0)].assign(_cap=cap)
    ranked = ok.sort_values("_cap", ascending=False, kind="stable")
    conf = confirm_rows(measurements)
    started = set(conf["config_id"].astype(str)) if not conf.empty else set()
    rest = ranked.iloc[top:]
    chosen = pd.concat([ranked.head(top), rest[rest["config_id"].astype(str).isin(started)]])
    plan = [(candidate_from_row(r), float(r["capacity_level"])) for _, r in chosen.iterrows()]
    done: set[tuple[str, int]] = set()
    if not conf.empty:
        done = {(str(c), int(r)) for c, r in zip(conf["config_id"], conf["confirm_round"]) if not pd.isna(r)}
    return plan, done


def next_confirmation(
    plan: Plan, done: set[tuple[str, int]], dropped: set[Any], rounds: int
) -> tuple[Any, float, int] | None:
    """The next (config, level, round) to measure: the lowest round first, in plan order, so the
    rounds interleave (A B C A B C) and a config that joins late runs its first round next."""
    for round_ in range(1, rounds + 1):
        for cand, level in plan:
            if cand not in dropped and (cand.config_id, round_) not in done:
                return cand, level, round_
    return None


@dataclass
class ConfirmIO:
    """What the round does outside itself."""

    tables: Callable[[], tuple[pd.DataFrame, pd.DataFrame]]  # (configs, measurements) as they are now
    apply: Callable[[Any], str]  # load a config: '' or why the server refused it
    measure: Callable[[Any, float, int], Awaitable[Measurement | None]]  # (cand, level, round); None: stopped
    decide: Callable[[Measurement], Verdict]
    record: Callable[[Any, Measurement, Verdict, int], None]  # store a measured round
    stopped: Callable[[], bool]
    say: Callable[[str], None]
    others_busy: Callable[[], bool] = lambda: False  # a shared study: another worker still measures
    started: Callable[[list[Any], int], None] | None = None  # the configs of the round, and its rounds
    measured: Callable[[Any, int, Measurement, Verdict], None] | None = None  # (cand, round, m, verdict)


class ConfirmationRound:
    """One sweep's confirmation round: `top` configs, `rounds` rounds each."""

    def __init__(
        self,
        io: ConfirmIO,
        top: int,
        rounds: int,
        *,
        claims: SharedTables | None = None,
        unconfirmed: str = "",
        stall_s: float = 60.0,
    ) -> None:
        self.io, self.top, self.rounds = io, top, rounds
        self.claims = claims  # a shared study's claim tables (who runs the round), else None
        self.unconfirmed = unconfirmed  # why this workload's pick cannot be confirmed ('' : it can)
        self.stall_s = stall_s  # waiting workers: no row for this long means the confirming one died

    async def run(self) -> bool:
        """Run the round (or, in a shared study another worker claimed it for, wait for it);
        False when stopped.

        A shared study confirms on one worker, against one server, so that it compares like with
        like. The others wait for it and then print its answer, so every worker prints the pick
        `tritune report --storage` gives. A waiting worker takes the round over when its holder
        is gone, and a holder that finds its round taken over waits for the new holder."""
        if self.claims is None or self.top <= 0:
            return await self.measure_rounds()
        while True:
            if self.claims.claim(CONFIRM_CLAIM, -1):
                outcome = await self._confirm_here()
            else:
                outcome = self.wait_for_other()
                if outcome is None:  # taken over: this worker runs the rest of the round
                    outcome = await self._confirm_here()
            if outcome is not None:
                return outcome

    async def _confirm_here(self) -> bool | None:
        """Run the round while holding its claim, keeping the claim's beat fresh; True when it
        ended, False when stopped, None when another worker took it over meanwhile.

        Ended: the round is marked done, and the waiting workers print its pick. Stopped or
        failed: the claim is given back, so that a waiting worker continues the round."""
        claims = self.claims
        assert claims is not None
        held = claims.holder(CONFIRM_CLAIM)
        generation = held[0] if held is not None else -1
        beat = Heartbeat(
            lambda: claims.touch(CONFIRM_CLAIM),
            claims.timings.heartbeat_s,
            retry=claims.retry,
            name="heartbeat-confirmation",
        ).start()
        try:
            finished = await self.measure_rounds()
        except ClaimLostError as lost:
            beat.stop()
            self.io.say(f"confirmation round: {lost.message}; waiting for its new holder")
            return None
        except DatabaseError:
            beat.stop()  # nothing to give back to: the others take the round over once its beat is stale
            raise
        except BaseException:
            beat.stop()
            self._give_back(generation)
            raise
        beat.stop()
        if finished:
            claims.claim(CONFIRMED_CLAIM, -1)
        else:
            self._give_back(generation)  # stopped: a waiting worker goes on with the round
        return finished

    def _give_back(self, generation: int) -> None:
        """Release the round's claim, so that a waiting worker can continue the round at once."""
        assert self.claims is not None, "only a shared study's round has a claim to give back"
        try:
            self.claims.release(CONFIRM_CLAIM, generation)
        except Exception:  # noqa: BLE001 - the error that ends the round is the one to report;
            pass  # an unreleased claim is taken over once its beat is stale

    def wait_for_other(self) -> bool | None:
        """Wait for another worker's confirmation round: until it marks the round done (True),
        this worker is stopped (False), or it writes no row for longer than `stall_s` (True:
        the pick is what the study holds). None when its holder is gone (its beat stale for
        longer than the grace period, or the claim given back) and this worker has taken the
        round over."""
        claims = self.claims
        assert claims is not None
        grace_s = claims.timings.grace_s
        held = claims.holding(CONFIRM_CLAIM)
        who = held[1] if held else "another worker"
        self.io.say(f"confirmation round: {who} runs it against its own server; waiting for its answer")
        rows, last_change = -1, time.monotonic()
        seen, seen_at = held, time.monotonic()
        while claims.holder(CONFIRMED_CLAIM) is None:
            if self.io.stopped():
                return False
            held = claims.holding(CONFIRM_CLAIM)
            if held is None:
                if claims.claim(CONFIRM_CLAIM, -1):
                    self.io.say(f"confirmation round: {who} gave it up; this worker continues it")
                    return None
            elif held != seen:
                seen, seen_at, who = held, time.monotonic(), held[1]
            elif (
                # Its beat stopped (not while the database was down: nobody could beat then).
                time.monotonic() - seen_at > grace_s
                and claims.retry.quiet_for(grace_s)
                and claims.take_over(CONFIRM_CLAIM, held[0], held[0] - 1, old_worker=held[1])
            ):
                self.io.say(
                    f"confirmation round: {who} stopped its heartbeat {grace_s} s ago (it died); this "
                    "worker takes the round over and continues it"
                )
                return None
            count = claims.count("measurement")
            if count != rows:
                rows, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > self.stall_s:
                self.io.say(
                    f"confirmation round: {who} wrote nothing for {self.stall_s:.0f} s and may have died; "
                    f"the pick below is what the study holds now (tritune report --storage URL --study "
                    f"{claims.study} shows the final answer)"
                )
                return True
            time.sleep(SHARED_POLL_S)
        return True

    async def measure_rounds(self) -> bool:
        """Re-measure the top configs at their capacity levels, interleaved; False when stopped.

        In a shared study the round starts as soon as this worker's search ends: other workers
        may still finish their last configs, and one that enters the top joins the round (its
        rounds come after, still interleaved with the rest). The round ends when nothing is left
        to measure and no other worker measures. A config the server no longer loads is left out."""
        io = self.io
        if self.unconfirmed:
            if confirm_plan(*io.tables(), self.top)[0]:
                io.say(self.unconfirmed)
            return True
        dropped: set[Any] = set()
        announced: list[Any] = []
        while True:
            if io.stopped():
                return False
            # Others' busy state first: a config's row is written before its trial ends, so when
            # no one was busy here, the plan read next holds every config.
            others_busy = io.others_busy()
            plan, done = confirm_plan(*io.tables(), self.top)
            step = next_confirmation(plan, done, dropped, self.rounds)
            if step is None:
                if not others_busy:
                    return True
                await asyncio.sleep(SHARED_POLL_S)
                continue
            new = [c for c, _ in plan if c not in dropped and c not in announced]
            if new and not announced:
                if io.started:
                    io.started(new, self.rounds)
            elif new:
                joined = ", ".join(c.config_id for c in new)
                io.say(f"confirmation: {joined} joins the round (measured by another worker meanwhile)")
            announced += new
            cand, level, round_ = step
            reason = io.apply(cand)
            if reason:
                io.say(f"confirmation: {cand.config_id} could not be loaded again ({reason}); left out")
                dropped.add(cand)
                continue
            m = await io.measure(cand, level, round_)
            if m is None:
                return False
            verdict = io.decide(m)
            io.record(cand, m, verdict, round_)
            if io.measured:
                io.measured(cand, round_, m, verdict)
