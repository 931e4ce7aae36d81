"""What limits a shared study as workers are added: database writes per second and trial claims.

Every worker of a shared sweep (`tritune sweep --storage URL --study NAME`) does the same few
database operations per config: an Optuna ask (which reads the study's trials), a claim in
`tritune_claims`, its heartbeat, one `tritune_rows` row per load level and one per config, and a
tell. This script starts a temporary PostgreSQL (Debian's package, with fsync on, as a real
deployment runs it) and drives those operations from N processes at once, with no Triton and no
load generator, to find the rates the database sustains:

- rows: each process appends measurement rows (`SharedTables.append`, one transaction each,
  which also checks that the process still holds the config's claim) for a fixed time; rows per
  second over all processes;
- trials: each process runs `--asks` turns of the worker's claim loop (`fail_stale_trials`,
  `study.ask` on the RDB storage, TPE over a space of `--space` configs; a config some worker
  has is answered from the study, a new one is claimed in `tritune_claims`, "measured" with a
  heartbeat and one config row, and told); trials per second over all processes, the ask's own
  latency early and late in the run (TPE reads every trial of the study on each ask), and the
  share of asks that lost their claim to another worker (a race: two workers proposed the same
  new config at once).

Each N is run `--repeats` times, interleaved (1 2 4 1 2 4 ...), and the medians are printed. On
this 2-core machine the database, its clients and anything else running share the CPUs, so the
figures are a floor for a database on its own machine, not a ceiling.

    python benchmarks/shared_storage_limits.py --repeats 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from optuna.distributions import IntDistribution  # noqa: E402
from optuna.storages import fail_stale_trials  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from analyzer.search.claims import claim_config  # noqa: E402
from analyzer.search.heartbeat import Heartbeat  # noqa: E402
from analyzer.store.shared_storage import open_shared_storage  # noqa: E402
from analyzer.store.study_tables import SharedTables  # noqa: E402
from tests.pg import temporary_postgres  # noqa: E402

# A measurements.csv row as a worker writes it (the size matters more than the values).
ROW = {
    "config_id": "i2_b32_d0",
    "instance_count": 2,
    "max_batch_size": 32,
    "max_queue_delay_us": 0,
    "load_mode": "concurrency",
    "load_level": 64,
    "throughput_rps": 1286.4,
    "p50_ms": 44.1,
    "p90_ms": 60.2,
    "p95_ms": 66.0,
    "p99_ms": 80.3,
    "p99_ci_low_ms": 75.0,
    "p99_ci_high_ms": 85.9,
    "max_ms": 95.1,
    "requests": 3859,
    "errors": 0,
    "stable": True,
    "windows": 3,
    "duration_s": 3.0,
    "meets_budget": True,
    "avg_batch_size": 21.3,
    "server_cpu_pct": 31.0,
    "client_cpu_pct": 80.0,
    "verdict": "meets",
}


def _rows_worker(url: str, study: str, worker: int, seconds: float, out: mp.Queue) -> None:
    tables = SharedTables(url, study, f"w{worker}")
    # A worker writes a config's rows while it holds the config's claim (each append checks it).
    config_id = f"{ROW['config_id']}-w{worker}"
    assert tables.claim(config_id, worker)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        tables.append("measurement", {**ROW, "config_id": config_id}, trial=worker)
        n += 1
    out.put(n)


def _space(size: int) -> dict[str, IntDistribution]:
    """Three ordinal knobs whose product is about `size` configs (the encoding tritune uses)."""
    side = max(2, round(size ** (1 / 3)))
    return {
        k: IntDistribution(0, side - 1) for k in ("instance_count", "max_batch_size", "max_queue_delay_us")
    }


def _trials_worker(url: str, study_name: str, worker: int, space: int, asks: int, out: mp.Queue) -> None:
    """`asks` proposals, each handled as a worker's search does: a config some worker already
    has is answered from the study (told its value again, as tritune's TPE search does); a new
    one is claimed, then measured (heartbeat, a config row) and told; a lost claim is a race."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna warns that heartbeats are meant for Study.optimize; tritune drives ask/tell itself.
    warnings.filterwarnings("ignore", message="Heartbeat of storage")
    storage = open_shared_storage(url)  # the workers' own: heartbeats, grace period, retries
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=worker, n_startup_trials=10),
    )
    tables = SharedTables(url, study_name, f"w{worker}")
    dists = _space(space)
    measured, lost, answered, ask_s = 0, 0, 0, []
    for _ in range(asks):
        t0 = time.monotonic()
        fail_stale_trials(study)  # as every worker's ask does, so dead workers' configs return
        trial = study.ask(dists)
        ask_s.append(time.monotonic() - t0)
        config_id = "_".join(str(trial.params[k]) for k in dists)
        value = float(sum(trial.params.values()))
        if tables.holder(config_id) is not None:
            answered += 1
            study.tell(trial, value)
        elif not claim_config(tables, study, config_id, trial.number):  # the workers' own claim
            lost += 1  # another worker claimed it between our look and our claim
            study.tell(trial, state=TrialState.FAIL)
        else:
            trial_id = trial._trial_id
            interval = storage.timings.heartbeat_s
            beat = Heartbeat(lambda: storage.record_heartbeat(trial_id), interval, storage.retry).start()  # noqa: B023 - stopped in this iteration
            tables.append("config", {**ROW, "config_id": config_id}, trial=trial.number)
            beat.stop()  # a worker stops it when its config is measured
            study.tell(trial, value)
            measured += 1
    out.put((measured, lost, answered, ask_s))


def _run(target, args_for, n: int) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    """Start n processes of target at once; wall seconds and what each put on the queue."""
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=target, args=(*args_for(i), out)) for i in range(n)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return time.monotonic() - t0, results


def main() -> None:
    """Run both measurements for each worker count, interleaved, and print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rows run")
    parser.add_argument("--space", type=int, default=1000, help="configs in the trials run's space")
    parser.add_argument("--asks", type=int, default=60, help="proposals per worker in each trials run")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    rows_rate: dict[int, list[float]] = {n: [] for n in counts}
    trial_rate: dict[int, list[float]] = {n: [] for n in counts}
    lost_share: dict[int, list[float]] = {n: [] for n in counts}
    early: dict[int, list[float]] = {n: [] for n in counts}
    late: dict[int, list[float]] = {n: [] for n in counts}
    with temporary_postgres(fsync=True) as url:
        for repeat in range(1, args.repeats + 1):
            for n in counts:
                study = f"rows-{repeat}-{n}"
                wall, done = _run(_rows_worker, lambda i: (url, study, i, args.seconds), n)  # noqa: B023 - _run calls it now
                rows_rate[n].append(sum(done) / wall)
                name = f"trials-{repeat}-{n}"
                optuna.create_study(study_name=name, storage=url)
                wall, done = _run(_trials_worker, lambda i: (url, name, i, args.space, args.asks), n)  # noqa: B023 - _run calls it now
                measured, lost = sum(d[0] for d in done), sum(d[1] for d in done)
                answered = sum(d[2] for d in done)
                ask_s = [s for d in done for s in d[3]]
                asks = len(ask_s)
                trial_rate[n].append(asks / wall)
                lost_share[n].append(lost / asks)
                tenth = max(1, len(ask_s) // 10)
                early[n].append(1000 * statistics.median(ask_s[:tenth]))
                late[n].append(1000 * statistics.median(ask_s[-tenth:]))
                print(
                    f"repeat {repeat}, {n} worker(s): {rows_rate[n][-1]:7.0f} rows/s; "
                    f"{trial_rate[n][-1]:5.1f} trials/s ({measured} claimed and measured, {answered} "
                    "answered from "
                    f"the study), {lost}/{asks} asks lost their claim to another worker, "
                    f"ask {early[n][-1]:.0f} ms early, {late[n][-1]:.0f} ms late",
                    flush=True,
                )
    print(
        f"\nmedians of {args.repeats} (trials runs: {args.asks} asks per worker, a {args.space}-config space)"
    )
    for n in counts:
        print(
            f"{n} worker(s): {statistics.median(rows_rate[n]):7.0f} rows/s, "
            f"{statistics.median(trial_rate[n]):5.1f} trials/s, "
            f"{100 * statistics.median(lost_share[n]):4.1f} % of asks lost their claim to another worker, "
            f"ask {statistics.median(early[n]):.0f} ms early / {statistics.median(late[n]):.0f} ms late"
        )


if __name__ == "__main__":
    main()
