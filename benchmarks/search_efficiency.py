"""Search efficiency on the demo model: grid over the whole space, then Optuna on the same budget.

Prints, for each strategy, the wall time, configs measured and best capacity under the budget,
and the ratios (Optuna's best / grid's best, Optuna's wall time / grid's). Because measurements
move a few percent run to run, it also prints the capacity *grid* measured for the config Optuna
chose: that ratio compares choices, not two noisy measurements of them.

    python benchmarks/search_efficiency.py              # 36-config space, budget 10 ms
    python benchmarks/search_efficiency.py --max-trials 8 --budget-ms 20 --out /tmp/eff
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-ms", type=float, default=10.0)
    parser.add_argument("--max-trials", type=int, default=8, help="Optuna's trial budget")
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
        import pandas as pd

        grid_configs = pd.read_csv(grid[4] / "configs.csv").set_index("config_id")
        grid_of_choice = float(grid_configs["capacity_rps"].get(opt[3], 0.0)) if opt[3] else 0.0
        print(f"optuna best / grid best: {opt[2] / grid[2]:.3f}" if grid[2] else "grid found no config under the budget")
        if grid[2]:
            print(f"grid's own measurement of optuna's choice / grid best: {grid_of_choice / grid[2]:.3f}")
        print(f"optuna wall / grid wall: {opt[0] / grid[0]:.3f}")
        if args.out:
            print(f"run directories: {grid[4]}  {opt[4]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
