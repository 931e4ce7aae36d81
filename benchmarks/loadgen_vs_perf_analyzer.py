"""Compare tritune's load generator with NVIDIA's perf_analyzer on the same server and model.

Launches one local tritonserver with the demo model and an identity model. For each protocol
and each concurrency level it runs perf_analyzer and tritune's generator (once per --workers
value) in turn, interleaved (A B1 B2 A B1 B2 ...), with the same window length and stability
rule, and prints the medians of both throughputs and p99s with their ratios. Then it drives the
identity model at rising concurrency with each and prints the highest request rate each reached.
"server req/s" is the server's own count of inferences (its statistics) over the tool's measured
span (perf_analyzer: over its whole run, start-up included, so a little low): a check that each
tool counts what the server served. "paired ratios" (throughput, p99) are the medians of the
ratios within each interleaved pair of runs. Every line also gives the client CPU per request:
tritune's from its own per-level self-check (the generator processes' CPU over the measured
span), perf_analyzer's from the CPU its process
used over the whole run divided by the requests it reported (an approximation: it includes its
start-up and its own stabilising passes).

    python benchmarks/loadgen_vs_perf_analyzer.py --perf-analyzer "$(bash benchmarks/get_perf_analyzer.sh)"

Numbers depend on the machine: on a 2-core box client and server share the CPUs, so a client
that needs more CPU per request leaves less for the server.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.load.shapes import LoadSpec  # noqa: E402
from analyzer.measure.levels import MeasureSettings  # noqa: E402
from analyzer.measure.monitor import stats_delta  # noqa: E402
from analyzer.server.control import ServerControl  # noqa: E402
from analyzer.server.discovery import find_tritonserver  # noqa: E402
from analyzer.server.local import LocalServer  # noqa: E402
from analyzer.server.session import open_server  # noqa: E402
from analyzer.sweep.profile import profile_model  # noqa: E402

MODELS = {
    "demo_mlp": ROOT / "sweeps" / "demo" / "models" / "demo_mlp",
    "identity": ROOT / "tests" / "models" / "identity",
}
SHAPES = {"demo_mlp": {}, "identity": {"INPUT0": [256]}}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_count(server: LocalServer, model: str) -> int:
    """The server's own count of successful inferences of `model` so far."""
    assert server.endpoint is not None
    with ServerControl(server.endpoint, "grpc") as control:
        stats = control.statistics(model)
    return stats_delta({}, stats).requests if stats else 0


def run_perf_analyzer(
    pa: str,
    server: LocalServer,
    protocol: str,
    model: str,
    concurrency: int,
    window_ms: int,
    stability: float,
    workdir: Path,
) -> tuple[float, float, float, float, str]:
    """One perf_analyzer run at one concurrency: (infer/s, p99 ms, client CPU us per request,
    the server's own req/s over the whole run (start-up included, so a little low), note)."""
    assert server.endpoint is not None
    url = server.endpoint.url(protocol)
    out = workdir / f"pa-{model}-{concurrency}.csv"
    shape_args = [f"--shape={name}:{','.join(map(str, dims))}" for name, dims in SHAPES[model].items()]
    # perf_analyzer exits 2 when its windows never agree; loosen as it suggests before giving up.
    attempts = [(stability, window_ms), (30.0, window_ms), (50.0, window_ms), (50.0, window_ms * 5 // 2)]
    for stab, window in attempts:
        cmd = [
            pa,
            "-m",
            model,
            "-i",
            protocol,
            "-u",
            url,
            f"--concurrency-range={concurrency}:{concurrency}",
            f"--measurement-interval={window}",
            f"--stability-percentage={stab:g}",
            "--percentile=99",
            "-f",
            str(out),
            *shape_args,
        ]
        count0, cpu0, t0 = server_count(server, model), _children_cpu_s(), time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            # Seen with -i http at concurrency 32: perf_analyzer never returned.
            return NAN, NAN, NAN, NAN, f"perf_analyzer hung (-s {stab:g}, killed after 240 s)"
        cpu, wall = _children_cpu_s() - cpu0, time.monotonic() - t0
        served = (server_count(server, model) - count0) / wall
        if proc.returncode == 0:
            with open(out) as fh:
                row = next(csv.DictReader(fh))
            rps = float(row["Inferences/Second"])
            note = "" if (stab, window) == attempts[0] else f"perf_analyzer needed -s {stab:g} -p {window}"
            return rps, float(row["p99 latency"]) / 1000.0, cpu / (rps * wall) * 1e6, served, note
    return NAN, NAN, NAN, NAN, "perf_analyzer never stable (even -s 50 with 2.5x windows)"


def run_ours(
    server: LocalServer, protocol: str, model: str, concurrency: int, settings: MeasureSettings, workers: int
) -> tuple[float, float, float, float, str]:
    """One tritune measurement at one concurrency, as `tritune profile --url` takes it: (req/s,
    p99 ms, client CPU us per request, the server's own req/s over the same span, note)."""
    assert server.endpoint is not None
    with open_server(protocol=protocol, url=server.endpoint.url(protocol)) as session:
        run = profile_model(
            session,
            model,
            [LoadSpec("concurrency", concurrency)],
            settings,
            shapes=SHAPES[model],
            workers=workers,
        )
    (m,) = run.measurements
    cpu_us = m.client_cpu_pct / 100.0 / m.throughput_rps * 1e6 if m.throughput_rps > 0 else NAN
    notes = [] if m.stable else [f"tritune w{workers} unstable in a run"]
    if m.client_bound:
        notes.append(f"tritune w{workers} client bound in a run")
    return m.throughput_rps, m.p99_ms, cpu_us, m.server_requests / m.duration_s, "; ".join(notes)


NAN = float("nan")
Runs = list[tuple[float, float, float, float]]


def med(runs: Runs, i: int) -> float:
    """Median of field i over the runs that gave a figure."""
    values = [r[i] for r in runs if r[i] == r[i]]  # NaN: a run that gave no figure
    return statistics.median(values) if values else NAN


def paired_ratio(ours: Runs, theirs: Runs, i: int) -> float:
    """Median over repeats of (ours / theirs) within each interleaved pair: each pair ran back to
    back, so slow drift of a shared machine cancels within it (a ratio of medians does not)."""
    ratios = [a[i] / b[i] for a, b in zip(ours, theirs) if a[i] == a[i] and b[i] == b[i] and b[i] > 0]
    return statistics.median(ratios) if ratios else NAN


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--perf-analyzer", required=True, help="perf_analyzer binary or wrapper")
    parser.add_argument(
        "--protocol", default="grpc,http", help="protocols to compare, e.g. grpc or grpc,http"
    )
    parser.add_argument("--workers", default="1,2", help="tritune --workers values to compare, e.g. 1,2")
    parser.add_argument("--concurrency", default="1,4,16", help="levels for the demo model comparison")
    parser.add_argument("--saturation", default="4,8,16", help="concurrency levels for the identity ceiling")
    parser.add_argument("--window-ms", type=int, default=2000, help="measurement window of both tools")
    parser.add_argument("--stability", type=float, default=10.0, help="stability percentage of both tools")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and level (median reported)")
    args = parser.parse_args()
    protocols = [p.strip() for p in args.protocol.split(",") if p.strip()]
    worker_counts = [int(w) for w in args.workers.split(",")]

    settings = MeasureSettings(
        window_s=args.window_ms / 1000.0, warmup_s=1.0, tolerance=args.stability / 100.0
    )
    with tempfile.TemporaryDirectory(prefix="tritune-bench-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        repo.mkdir()
        for name, path in MODELS.items():
            os.symlink(path, repo / name)
        with LocalServer(find_tritonserver(), repo, work / "server.log") as server:
            assert server.endpoint is not None
            with ServerControl(server.endpoint, "grpc") as control:
                for name in MODELS:
                    control.load_model(name)
            print(
                f"window {args.window_ms} ms; stability {args.stability:g} %; median of {args.repeats} "
                f"interleaved runs per tool; {os.cpu_count()} cores shared by client and server",
                flush=True,
            )
            summary: list[str] = []
            for protocol in protocols:

                def compare(model: str, level: int) -> tuple[Runs, dict[int, Runs], str]:
                    pa_runs: Runs = []
                    ours: dict[int, Runs] = {w: [] for w in worker_counts}
                    notes: set[str] = set()
                    for _ in range(args.repeats):  # A B1 B2 A B1 B2 ...: drift hits every tool alike
                        rps, p99, cpu, served, note = run_perf_analyzer(
                            args.perf_analyzer,
                            server,
                            protocol,  # noqa: B023 - compare() runs within this protocol's iteration
                            model,
                            level,
                            args.window_ms,
                            args.stability,
                            work,
                        )
                        pa_runs.append((rps, p99, cpu, served))
                        notes.add(note)
                        for w in worker_counts:
                            rps, p99, cpu, served, note = run_ours(
                                server,
                                protocol,  # noqa: B023 - as above
                                model,
                                level,
                                settings,
                                w,
                            )
                            ours[w].append((rps, p99, cpu, served))
                            notes.add(note)
                    return pa_runs, ours, "; ".join(sorted(n for n in notes if n))

                print(f"\n== {protocol}: demo_mlp, same concurrency, both tools ==", flush=True)
                print(
                    f"{'conc':>5} {'tool':>10} {'req/s':>9} {'ratio':>6} {'p99 ms':>8} {'ratio':>6} "
                    f"{'cpu us/req':>11} "
                    f"{'server req/s':>13} {'paired ratios':>14}"
                )
                for level in [int(x) for x in args.concurrency.split(",")]:
                    pa_runs, ours, notes = compare("demo_mlp", level)
                    pa_rps, pa_p99 = med(pa_runs, 0), med(pa_runs, 1)
                    print(
                        f"{level:>5} {'perf_an.':>10} {pa_rps:>9.1f} {'':>6} {pa_p99:>8.2f} {'':>6} "
                        f"{med(pa_runs, 2):>11.0f} "
                        f"{med(pa_runs, 3):>13.1f}"
                    )
                    for w, runs in ours.items():
                        rps, p99 = med(runs, 0), med(runs, 1)
                        print(
                            f"{'':>5} {'tritune w' + str(w):>10} {rps:>9.1f} {rps / pa_rps:>6.2f} "
                            f"{p99:>8.2f} "
                            f"{p99 / pa_p99:>6.2f} {med(runs, 2):>11.0f} {med(runs, 3):>13.1f} "
                            f"{paired_ratio(runs, pa_runs, 0):>6.2f} {paired_ratio(runs, pa_runs, 1):>6.2f}"
                        )
                        summary.append(
                            f"{protocol} demo c={level} w={w}: throughput ratio {rps / pa_rps:.2f}, "
                            f"p99 ratio {p99 / pa_p99:.2f} (paired: {paired_ratio(runs, pa_runs, 0):.2f}, "
                            f"{paired_ratio(runs, pa_runs, 1):.2f})"
                        )
                    if notes:
                        print(f"      notes: {notes}", flush=True)

                print(f"\n== {protocol}: identity, highest request rate each tool drives ==", flush=True)
                best_pa = 0.0
                best_ours = {w: 0.0 for w in worker_counts}
                for level in [int(x) for x in args.saturation.split(",")]:
                    pa_runs, ours, notes = compare("identity", level)
                    pa_rps = med(pa_runs, 0)
                    best_pa = max(best_pa, pa_rps) if pa_rps == pa_rps else best_pa
                    line = (
                        f"  concurrency {level:>3}: perf_analyzer {pa_rps:8.1f} req/s "
                        f"({med(pa_runs, 2):4.0f} us/req)"
                    )
                    for w, runs in ours.items():
                        best_ours[w] = max(best_ours[w], med(runs, 0))
                        line += f"   tritune w{w} {med(runs, 0):8.1f} req/s ({med(runs, 2):4.0f} us/req)"
                    print(line + (f"  [{notes}]" if notes else ""), flush=True)
                for w in worker_counts:
                    text = (
                        f"{protocol} identity saturated: perf_analyzer {best_pa:.1f} req/s, tritune w{w} "
                        f"{best_ours[w]:.1f} req/s, ratio {best_ours[w] / best_pa:.2f}"
                    )
                    print(text, flush=True)
                    summary.append(text)
            print("\n== summary (medians) ==")
            print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
