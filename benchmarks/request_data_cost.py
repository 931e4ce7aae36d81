"""What real request data costs the load generator: one prebuilt request against a set of many.

Launches one local tritonserver with the tokens test model (int64 ids and mask of a variable
length) and drives it at a fixed concurrency with tritune's generator in this process, three
ways, interleaved, the order rotating each repeat (A B C, B C A, C A B, ...):

  A  one request (ids of length 64), as without request data;
  B  100 distinct requests (ranged random ids of length 64), sent in turn (cycle);
  C  the same 100, drawn at random (sample).

Per run it prints throughput and the client's CPU per request (from the generator's own
self-check), then the medians over the repeats and each variant's ratio to A. Every variant
sends the same bytes per request, so the difference is the cost of choosing the next request.

    python benchmarks/request_data_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.load.input_plan import InputGen, InputPlan  # noqa: E402
from analyzer.load.shapes import LoadSpec  # noqa: E402
from analyzer.measure.levels import MeasureSettings  # noqa: E402
from analyzer.server.control import ServerControl  # noqa: E402
from analyzer.server.discovery import find_tritonserver  # noqa: E402
from analyzer.server.local import LocalServer  # noqa: E402
from analyzer.server.session import open_server  # noqa: E402
from analyzer.sweep.profile import profile_model  # noqa: E402

MODEL = "tokens"
GENS = {"input_ids": InputGen(shape=(64,), low=0, high=63), "attention_mask": InputGen(shape=(64,), value=1)}
VARIANTS = {
    "A one request": InputPlan(requests=1, inputs=GENS),
    "B 100 cycled": InputPlan(order="cycle", requests=100, inputs=GENS),
    "C 100 sampled": InputPlan(order="sample", requests=100, inputs=GENS),
}


def run_once(
    server: LocalServer, protocol: str, plan: InputPlan, concurrency: int, settings: MeasureSettings
) -> tuple[float, float]:
    """One measurement, as `tritune profile --url` takes it: (req/s, client CPU us per request)."""
    assert server.endpoint is not None
    with open_server(protocol=protocol, url=server.endpoint.url(protocol)) as session:
        run = profile_model(
            session,
            MODEL,
            [LoadSpec("concurrency", concurrency)],
            settings,
            shapes={"input_ids": [64], "attention_mask": [64]},
            input_plan=plan,
            workers=1,
        )
    (m,) = run.measurements
    assert m.errors == 0, m.error_kinds
    return m.throughput_rps, m.client_cpu_pct / 100.0 / m.throughput_rps * 1e6


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--protocols", default="grpc,http")
    args = parser.parse_args()
    settings = MeasureSettings(window_s=1.0, warmup_s=0.5, max_windows=5, tolerance=0.5)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        (repo / MODEL).symlink_to(ROOT / "tests" / "models" / MODEL)
        server = LocalServer(find_tritonserver(), repo, Path(tmp) / "server.log")
        with server:
            assert server.endpoint is not None
            with ServerControl(server.endpoint, "grpc") as control:
                control.load_model(MODEL)
            for protocol in args.protocols.split(","):
                results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
                names = list(VARIANTS)
                for repeat in range(args.repeats):
                    # Rotate the order each repeat (A B C, B C A, C A B): on a shared machine
                    # whichever runs first in a round can differ for reasons of its own.
                    for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                        plan = VARIANTS[name]
                        rps, cpu = run_once(server, protocol, plan, args.concurrency, settings)
                        results[name].append((rps, cpu))
                        print(
                            f"{protocol} repeat {repeat + 1} {name:<14} {rps:8.1f} req/s  client {cpu:6.1f} "
                            "us/request",
                            flush=True,
                        )
                base_rps = statistics.median(r for r, _ in results["A one request"])
                base_cpu = statistics.median(c for _, c in results["A one request"])
                print(f"\n{protocol}, concurrency {args.concurrency}, medians of {args.repeats}:")
                for name, runs in results.items():
                    rps = statistics.median(r for r, _ in runs)
                    cpu = statistics.median(c for _, c in runs)
                    print(
                        f"  {name:<14} {rps:8.1f} req/s ({rps / base_rps:.2f})  client {cpu:6.1f} us/request "
                        f"({cpu / base_cpu:.2f})"
                    )
                print()


if __name__ == "__main__":
    main()
