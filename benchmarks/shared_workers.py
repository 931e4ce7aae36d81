"""One worker against two on one shared study: the simulator's default sweep, wall time and pick.

Starts a temporary PostgreSQL (Debian's package), then per repeat runs the default sweep of the
simulator model (the spec of benchmarks/search_efficiency.py: the space and budget only) as a
shared study twice, interleaved (one worker, then two workers, each on its own local
tritonserver), and prints each run's wall time (first start to last exit), configs measured and
pick, then the medians and their ratio.

What it can show on a 2-core machine: the simulator sleeps instead of computing (its server and
stubs use 10-35 % of a core), so two servers and two load generators fit on two cores, and the
split of configs between workers is what cuts the wall time. What it cannot show: workers on
separate GPU machines, where each server has its own hardware and the database is remote.

    python benchmarks/shared_workers.py --repeats 3
    python benchmarks/shared_workers.py --repeats 3 --pin    # one core per worker (taskset)

Without --pin, two workers share both cores: a config measured while the other worker sends load
gets less CPU than the lone worker's did, so the two runs do not measure on the same hardware.
With --pin, every worker (the lone one too) has one core to itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brute_force import candidates, load_truth  # noqa: E402
from search_efficiency import default_spec, verify  # noqa: E402

from tests.pg import temporary_postgres  # noqa: E402


def worker_command(spec: Path, url: str, study: str, out: Path, core: int | None) -> list[str]:
    """One worker's command line; pinned to one core (taskset) when `core` is given.

    Pinning gives each worker, its tritonserver and its load processes (they inherit the
    affinity) a core of their own, the nearest this machine comes to one machine per worker.
    """
    cmd = [
        sys.executable,
        "-m",
        "analyzer.cli.main",
        "sweep",
        str(spec),
        "--storage",
        url,
        "--study",
        study,
        "--out",
        str(out),
        "-q",
    ]
    return cmd if core is None else ["taskset", "-c", str(core), *cmd]


def run(spec: Path, url: str, study: str, workers: int, out: Path, pin: bool = False) -> dict[str, object]:
    """One shared sweep with `workers` processes; wall time, configs measured, pick."""
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            worker_command(spec, url, study, out / f"w{i}", i if pin else None),
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(workers)
    ]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.monotonic() - t0
    picks = {m.group(1) for o in outputs for m in [re.search(r"^best config: (\S+)", o, re.M)] if m}
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "analyzer.cli.main",
            "report",
            "--storage",
            url,
            "--study",
            study,
            "--out",
            str(out / "report"),
        ],
        cwd=ROOT,
        text=True,
        capture_output=True,
    )
    run_dir = next((out / "report").glob("*/summary.json")).parent
    summary = json.loads((run_dir / "summary.json").read_text())
    # The search's top 3 (what the confirmation round re-measured) and the round's tie set: to see
    # whether a different pick was a different search or a different confirmation.
    configs = pd.read_csv(run_dir / "configs.csv").sort_values("capacity_rps", ascending=False)
    top = ", ".join(f"{c} {r:.0f}" for c, r in zip(configs["config_id"][:3], configs["capacity_rps"][:3]))
    return {
        "wall_s": wall,
        "codes": [p.returncode for p in procs],
        "picks": sorted(picks),
        "report_pick": (summary.get("best") or {}).get("config_id"),
        "configs": summary.get("configs_tried"),
        "report_rc": report.returncode,
        "top": top,
        "tie_set": summary.get("tie_set") or [],
        "run_dir": run_dir,
        "measured": " ".join(f"{c}:{r:.0f}" for c, r in zip(configs["config_id"], configs["capacity_rps"])),
    }


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--confirm-top",
        type=int,
        default=None,
        help="Override the spec's confirm_top (0: the search alone, no confirmation round).",
    )
    parser.add_argument(
        "--verify",
        type=int,
        default=0,
        help="Re-measure every arm's picks side by side on one fresh server, this many "
        "interleaved rounds (on core 0 with --pin): whether different picks are "
        "equally good.",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="Give each worker one core of its own (worker i on core i, also the lone worker "
        "on core 0): both runs then measure on the same per-worker hardware.",
    )
    parser.add_argument("--out", type=Path, help="keep the runs' directories here (default: a temp dir)")
    args = parser.parse_args()
    _, truth = load_truth()
    walls: dict[int, list[float]] = {1: [], 2: []}
    picks: dict[int, list[str]] = {1: [], 2: []}
    last_run: Path | None = None
    with tempfile.TemporaryDirectory() as scratch, temporary_postgres() as url:
        tmp = str(args.out or scratch)
        for repeat in range(1, args.repeats + 1):
            spec = Path(tmp) / f"spec{repeat}.yaml"
            data = default_spec(truth, "grpc", seed=repeat)
            if args.confirm_top is not None:
                data["confirm_top"] = args.confirm_top
            spec.write_text(yaml.safe_dump(data))
            for workers in (1, 2):
                r = run(
                    spec, url, f"r{repeat}-w{workers}", workers, Path(tmp) / f"r{repeat}-w{workers}", args.pin
                )
                walls[workers].append(float(r["wall_s"]))  # type: ignore[arg-type]
                picks[workers].append(str(r["report_pick"]))
                last_run = r["run_dir"]  # type: ignore[assignment]
                print(
                    f"repeat {repeat}, {workers} worker(s): {r['wall_s']:.1f} s, {r['configs']} configs, "
                    f"exit {r['codes']}, printed pick {r['picks']}, report's pick {r['report_pick']}; "
                    f"search's top 3 (req/s): {r['top']}; tie set {r['tie_set']}",
                    flush=True,
                )
                print(f"    measured (req/s): {r['measured']}", flush=True)
        one, two = statistics.median(walls[1]), statistics.median(walls[2])
        print(
            f"\nmedians of {args.repeats}: one worker {one:.1f} s, two workers {two:.1f} s, ratio "
            f"{two / one:.2f}",
            flush=True,
        )
        if args.verify and last_run is not None:
            verify_picks(picks, last_run, args.verify, args.pin, truth["space"])


def verify_picks(picks: dict[int, list[str]], run_dir: Path, rounds: int, pin: bool, space: dict) -> None:
    """Re-measure the distinct picks of both arms side by side, interleaved, and print each one's
    median capacity, then each arm's: the median over its runs of its pick's capacity.

    Why not only "the same pick": the top configs of this space are within a few per cent of
    each other, so one worker does not repeat its own pick from run to run either; what two
    workers must not do is pick worse."""
    ids = sorted(set(picks[1]) | set(picks[2]))
    reference = statistics.mode(picks[1])
    if pin:
        os.sched_setaffinity(0, {0})  # the server this starts inherits core 0, as a pinned worker's
    print(f"re-measuring {', '.join(ids)} side by side, {rounds} interleaved rounds", flush=True)
    by_id = {c.config_id: c for c in candidates(space)}
    caps = verify(run_dir, [by_id[i] for i in ids], rounds)
    ref = statistics.median(caps[reference])
    for config_id in ids:
        med = statistics.median(caps[config_id])
        arms = [f"{n} worker(s) x{picks[n].count(config_id)}" for n in (1, 2) if config_id in picks[n]]
        print(
            f"  {config_id} (picked by {', '.join(arms)}): median {med:.1f} req/s "
            f"({', '.join(f'{c:.0f}' for c in caps[config_id])}), {med / ref:.3f} of {reference}"
        )
    arm = {n: statistics.median(statistics.median(caps[c]) for c in picks[n]) for n in (1, 2)}
    print(
        f"the picks' re-measured capacity, median over each arm's runs: one worker {arm[1]:.1f} req/s, "
        f"two workers {arm[2]:.1f} req/s, ratio {arm[2] / arm[1]:.3f}"
    )


if __name__ == "__main__":
    main()
