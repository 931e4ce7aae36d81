"""Compare tritune's load generator with NVIDIA's perf_analyzer on the same server and model.

Launches one local tritonserver with the demo model and an identity model, then for each
concurrency level runs perf_analyzer and tritune's generator alternately (same protocol, same
window length, same stability rule) and prints both throughputs and p99s with their ratios.
Then it drives the identity model at rising concurrency with each tool and prints the highest
request rate each reached.

    python benchmarks/loadgen_vs_perf_analyzer.py --perf-analyzer "$(bash benchmarks/get_perf_analyzer.sh)"

Numbers depend on the machine: on a 2-core box client and server share the CPUs, so a client
that needs more CPU per request leaves less for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.load.inputs import request_specs  # noqa: E402
from analyzer.load.shapes import LoadSpec  # noqa: E402
from analyzer.profiler import MeasureSettings, Probe, measure_levels  # noqa: E402
from analyzer.server.control import ServerControl  # noqa: E402
from analyzer.server.discovery import find_tritonserver  # noqa: E402
from analyzer.server.local import LocalServer  # noqa: E402

MODELS = {
    "demo_mlp": ROOT / "sweeps" / "demo" / "models" / "demo_mlp",
    "identity": ROOT / "tests" / "models" / "identity",
}
SHAPES = {"demo_mlp": {}, "identity": {"INPUT0": [256]}}


def run_perf_analyzer(pa: str, url: str, protocol: str, model: str, concurrency: int, window_ms: int, stability: float, workdir: Path) -> tuple[float, float, str]:
    """One perf_analyzer run at one concurrency: (infer/s, p99 ms, note)."""
    out = workdir / f"pa-{model}-{concurrency}.csv"
    shape_args = [f"--shape={name}:{','.join(map(str, dims))}" for name, dims in SHAPES[model].items()]
    # perf_analyzer exits 2 when its windows never agree; loosen as it suggests before giving up.
    attempts = [(stability, window_ms), (30.0, window_ms), (50.0, window_ms), (50.0, window_ms * 5 // 2)]
    for stab, window in attempts:
        cmd = [
            pa, "-m", model, "-i", protocol, "-u", url,
            f"--concurrency-range={concurrency}:{concurrency}",
            f"--measurement-interval={window}", f"--stability-percentage={stab:g}",
            "--percentile=99", "-f", str(out), *shape_args,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            # Seen with -i http at concurrency 32: perf_analyzer never returned.
            return float("nan"), float("nan"), f"perf_analyzer hung (-s {stab:g}, killed after 240 s)"
        if proc.returncode == 0:
            with open(out) as fh:
                row = next(csv.DictReader(fh))
            note = "" if (stab, window) == attempts[0] else f"perf_analyzer needed -s {stab:g} -p {window}"
            return float(row["Inferences/Second"]), float(row["p99 latency"]) / 1000.0, note
    return float("nan"), float("nan"), "perf_analyzer never stable (even -s 50 with 2.5x windows)"


def run_ours(server: LocalServer, protocol: str, model: str, concurrency: int, settings: MeasureSettings) -> tuple[float, float, bool]:
    """One tritune measurement at one concurrency: (req/s, p99 ms, stable)."""
    assert server.endpoint is not None
    with ServerControl(server.endpoint, protocol) as control:
        meta = control.model_metadata(model)
        config = control.model_config(model)
    specs = request_specs(meta, int(config.get("max_batch_size", 0)), SHAPES[model])
    with Probe(server.endpoint, protocol, model, server.pid) as probe:
        (m,) = asyncio.run(
            measure_levels(protocol, server.endpoint.url(protocol), model, specs, probe,
                           [LoadSpec("concurrency", concurrency)], settings)
        )
    return m.throughput_rps, m.p99_ms, m.stable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--perf-analyzer", required=True, help="perf_analyzer binary or wrapper")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--concurrency", default="1,4,16", help="levels for the demo model comparison")
    parser.add_argument("--saturation", default="4,8,16,32", help="concurrency levels for the identity ceiling")
    parser.add_argument("--window-ms", type=int, default=2000, help="measurement window of both tools")
    parser.add_argument("--stability", type=float, default=10.0, help="stability percentage of both tools")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and level (median reported)")
    args = parser.parse_args()

    settings = MeasureSettings(window_s=args.window_ms / 1000.0, warmup_s=1.0, tolerance=args.stability / 100.0)
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
            url = server.endpoint.url(args.protocol)
            print(f"server {url} ({args.protocol}); window {args.window_ms} ms; stability {args.stability:g} %; "
                  f"median of {args.repeats} runs per tool", flush=True)

            def compare(model: str, level: int) -> tuple[float, float, float, float, str]:
                pa_runs, our_runs, notes = [], [], set()
                for _ in range(args.repeats):
                    rps, p99, note = run_perf_analyzer(args.perf_analyzer, url, args.protocol, model, level, args.window_ms, args.stability, work)
                    pa_runs.append((rps, p99))
                    if note:
                        notes.add(note)
                    rps, p99, stable = run_ours(server, args.protocol, model, level, settings)
                    our_runs.append((rps, p99))
                    if not stable:
                        notes.add("tritune unstable in a run")
                def med(runs: list[tuple[float, float]], i: int) -> float:
                    values = [r[i] for r in runs if r[i] == r[i]]  # NaN: a run that gave no figure
                    return statistics.median(values) if values else float("nan")

                return med(pa_runs, 0), med(our_runs, 0), med(pa_runs, 1), med(our_runs, 1), "; ".join(sorted(notes))

            print("\n== demo_mlp: same concurrency, both tools ==")
            print(f"{'conc':>5} {'pa req/s':>10} {'ours req/s':>11} {'ratio':>6} {'pa p99 ms':>10} {'ours p99 ms':>12} {'ratio':>6}  notes")
            for level in [int(x) for x in args.concurrency.split(",")]:
                pa_rps, our_rps, pa_p99, our_p99, notes = compare("demo_mlp", level)
                print(f"{level:>5} {pa_rps:>10.1f} {our_rps:>11.1f} {our_rps / pa_rps:>6.2f} {pa_p99:>10.2f} {our_p99:>12.2f} {our_p99 / pa_p99:>6.2f}  {notes}", flush=True)  # NaN ratio: perf_analyzer gave no figure

            print("\n== identity: highest request rate each tool drives ==")
            best_pa = best_ours = 0.0
            for level in [int(x) for x in args.saturation.split(",")]:
                pa_rps, our_rps, pa_p99, our_p99, notes = compare("identity", level)
                best_pa = max(best_pa, pa_rps) if pa_rps == pa_rps else best_pa
                best_ours = max(best_ours, our_rps)
                print(f"  concurrency {level:>3}: perf_analyzer {pa_rps:8.1f} req/s (p99 {pa_p99:6.2f} ms)   "
                      f"tritune {our_rps:8.1f} req/s (p99 {our_p99:6.2f} ms)  {notes}", flush=True)
            print(f"saturated rate: perf_analyzer {best_pa:.1f} req/s, tritune {best_ours:.1f} req/s, "
                  f"ratio {best_ours / best_pa:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
