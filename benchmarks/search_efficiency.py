"""Search efficiency on the demo model: grid over the whole space, then Optuna on the same budget.

Prints, for each strategy, the wall time, configs measured and best capacity under the budget,
and the ratios (Optuna's best / grid's best, Optuna's wall time / grid's). Measurements move by
several percent from run to run on a shared 2-core machine, and the best of 36 noisy numbers is
biased upward, so `--verify N` then measures the two chosen configs again, alternately, N times
each on one fresh server, and prints the ratio of those medians: it compares the choices, not
two lucky draws.

    python benchmarks/search_efficiency.py              # 36-config space, budget 10 ms
    python benchmarks/search_efficiency.py --max-trials 8 --budget-ms 20 --out /tmp/eff
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.spec import parse_spec  # noqa: E402
from analyzer.sweep import SweepOptions, run_sweep  # noqa: E402

SPACE = {
    "instance_count": [1, 2, 3],
    "max_batch_size": [1, 8, 32, 64],
    "max_queue_delay_us": [0, 500, 2000],
}


def sweep(strategy: str, args: argparse.Namespace, out: Path) -> tuple[float, int, float, str | None, Path]:
    """One sweep: (wall s, configs measured, best capacity, best config id, run dir)."""
    data = {
        "model": "demo_mlp",
        "model_repository": str(ROOT / "sweeps" / "demo" / "models"),
        "protocol": args.protocol,
        "budget_ms": args.budget_ms,
        "strategy": strategy,
        "max_trials": 1000 if strategy == "grid" else args.max_trials,
        "patience": args.patience,
        "seed": args.seed,
        "space": SPACE,
        "load": {"mode": "concurrency", "max_level": 64, "window_s": args.window_s, "warmup_s": 0.5,
                 "max_windows": 6, "refine_steps": 1},
    }
    spec = parse_spec(data, f"<{strategy} benchmark>")
    t0 = time.monotonic()
    result, store = run_sweep(spec, SweepOptions(out=str(out / strategy)))
    wall = time.monotonic() - t0
    best = result.summary.get("best")
    return (wall, result.summary["configs_tried"], float(best["throughput_rps"]) if best else 0.0,
            best["config_id"] if best else None, store.dir)


def verify(run_dir: Path, grid_id: str, opt_id: str, args: argparse.Namespace) -> tuple[float, float]:
    """Capacity of both chosen configs measured again on one server, alternately; medians."""
    import asyncio
    import statistics

    from analyzer.capacity import LevelSearch, search_capacity
    from analyzer.load.clients import make_client
    from analyzer.load.shapes import LoadSpec
    from analyzer.modelconfig import apply_candidate, read_pbtxt, to_dict
    from analyzer.profiler import Probe, make_tensors, measure_level
    from analyzer.runner import measure_settings
    from analyzer.server.session import open_server, prepare_model
    from analyzer.space import Candidate
    from analyzer.spec import load_spec

    spec = load_spec(run_dir / "spec.yaml")
    base = read_pbtxt(run_dir / "base_config.pbtxt")
    table = pd.read_csv(run_dir / "configs.csv").set_index("config_id")
    settings = measure_settings(spec)
    results: dict[str, list[float]] = {grid_id: [], opt_id: []}
    with open_server(protocol=spec.protocol, model_repository=spec.model_repository, log_path=run_dir / "verify.log") as session:
        info = prepare_model(session, spec.model, spec.inputs, load=True)
        for _ in range(args.verify):
            for config_id in (grid_id, opt_id):
                cand = Candidate.from_row(table.loc[config_id])
                session.control.load_model(spec.model, to_dict(apply_candidate(base, cand)))

                async def one() -> float:
                    client = make_client(spec.protocol, session.url, spec.model, make_tensors(info.specs), settings.request_timeout_s)
                    with Probe(session.endpoint, spec.protocol, spec.model, session.pid) as probe:
                        async def measure(level: float):  # type: ignore[no-untyped-def]
                            return await measure_level(client, probe, LoadSpec(spec.load.mode, level), settings)

                        search = LevelSearch(spec.load.mode, spec.load.min_level, spec.load.max_level,
                                             start=spec.load.min_level, refine_steps=spec.load.refine_steps)
                        result = await search_capacity(measure, search, spec.budget_ms, spec.percentile, spec.confidence)
                    await client.close()
                    return result.capacity_rps

                results[config_id].append(asyncio.run(one()))
    return statistics.median(results[grid_id]), statistics.median(results[opt_id])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-ms", type=float, default=10.0)
    parser.add_argument("--max-trials", type=int, default=7, help="Optuna's trial budget (default: ~20 %% of the grid)")
    parser.add_argument("--verify", type=int, default=2, help="re-measure both choices this many times each (0: skip)")
    parser.add_argument("--patience", type=int, default=6, help="Optuna: stop after this many trials without improvement")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="http")
    parser.add_argument("--window-s", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the run directories here (default: a temp dir)")
    args = parser.parse_args()

    n_configs = 1
    for values in SPACE.values():
        n_configs *= len(values)
    with tempfile.TemporaryDirectory(prefix="tritune-eff-") as tmp:
        out = args.out or Path(tmp)
        print(f"demo_mlp, {n_configs}-config space, budget p99 <= {args.budget_ms:g} ms, protocol {args.protocol}", flush=True)
        grid = sweep("grid", args, out)
        print(f"grid:   {grid[0]:7.1f} s  {grid[1]:3d} configs  best {grid[2]:8.1f} req/s ({grid[3]})", flush=True)
        opt = sweep("optuna", args, out)
        print(f"optuna: {opt[0]:7.1f} s  {opt[1]:3d} configs  best {opt[2]:8.1f} req/s ({opt[3]})", flush=True)
        grid_configs = pd.read_csv(grid[4] / "configs.csv").set_index("config_id")
        grid_of_choice = float(grid_configs["capacity_rps"].get(opt[3], 0.0)) if opt[3] else 0.0
        print(f"optuna best / grid best: {opt[2] / grid[2]:.3f}" if grid[2] else "grid found no config under the budget")
        if grid[2]:
            print(f"grid's own measurement of optuna's choice / grid best: {grid_of_choice / grid[2]:.3f}")
        print(f"optuna wall / grid wall: {opt[0] / grid[0]:.3f}")
        if args.verify and grid[3] and opt[3]:
            g, o = verify(grid[4], grid[3], opt[3], args)
            print(f"re-measured, median of {args.verify}: grid's choice {g:.1f} req/s, optuna's {o:.1f} req/s, "
                  f"ratio {o / g:.3f}" if g else "re-measure found no capacity for grid's choice")
        if args.out:
            print(f"run directories: {grid[4]}  {opt[4]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
