"""How well the server model (analyzer.predict) predicts configs it was not fitted on, against the
simulator's brute-force truth (benchmarks/data/simulator_truth.*: every config of the space at
every power-of-two concurrency, perf_analyzer-style).

The model is fitted on the levels of a few seed configs (as a sweep's first configs would be
measured) and predicts every config's capacity under the truth's budget (p99 95 ms). Printed:
the fitted parameters, each config's truth and prediction with its interval, the median
absolute error over the configs not fitted on, how often the interval covers the truth, whether
the predicted best is the truth's best, and how long predicting a 100,000-config space takes.

The truth's capacity is the throughput at the best power-of-two level, so it sits a little under
a capacity measured at any level; errors of a few percent are within that grain.

    python benchmarks/predict_error.py
    python benchmarks/predict_error.py --seeds i1_b1_d0,i1_b32_d0,i2_b8_d0,i3_b16_d0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.predict import fit, levels_from_rows  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "simulator_truth"
# Seeds that make the model identifiable: the batch sizes' ends and middle, every instance count.
SEEDS = "i1_b1_d0,i1_b32_d0,i2_b8_d0,i3_b16_d0,i2_b32_d1000"


def main() -> None:
    """Fit on the seeds, predict the rest, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=SEEDS, help="comma-separated config ids to fit on")
    args = parser.parse_args()
    truth = json.loads(DATA.with_suffix(".json").read_text())
    levels = pd.read_csv(DATA.with_suffix(".csv")).rename(columns={"level": "load_level"})
    levels["load_mode"] = "concurrency"
    seeds = args.seeds.split(",")
    model = fit(levels_from_rows(levels[levels["config_id"].isin(seeds)].to_dict("records"), "p99_ms"))
    if model is None:
        raise SystemExit("the seeds' levels cannot identify the model (no batch sizes measured)")
    params = {k: round(v, 4) for k, v in model.params().items()}
    print("fitted on", len(seeds), "configs:", json.dumps(params))
    configs = pd.DataFrame(truth["configs"]).T
    k = configs["instance_count"].astype(int).to_numpy()
    b = configs["max_batch_size"].astype(int).to_numpy()
    delay = configs["max_queue_delay_us"].astype(float).to_numpy() / 1000.0
    got = model.capacity(k, b, b > 1, delay, "concurrency", float(truth["budget_ms"]), 256)
    actual = configs["capacity_rps"].astype(float)
    table = pd.DataFrame(
        {
            "truth_rps": actual,
            "predicted_rps": got["capacity_rps"],
            "low_rps": got["low_rps"],
            "high_rps": got["high_rps"],
            "error": got["capacity_rps"] / actual - 1.0,
            "fitted": configs.index.isin(seeds),
        },
        index=configs.index,
    )
    table["covered"] = (table["low_rps"] <= actual) & (actual <= table["high_rps"])
    print(table.round(3).to_string())
    rest = table[~table["fitted"]]
    print(
        f"\nconfigs not fitted on: {len(rest)}; median |error| {rest['error'].abs().median():.3f}; "
        f"interval covers the truth for {rest['covered'].mean():.2f} of them; "
        f"median interval width {((rest['high_rps'] - rest['low_rps']) / rest['predicted_rps']).median():.2f}"
        " of the prediction"
    )
    print(f"predicted best {table['predicted_rps'].idxmax()}, truth best {actual.idxmax()}")
    n = 100_000
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    model.capacity(
        rng.integers(1, 9, n),
        rng.choice([1, 2, 4, 8, 16, 32, 64, 128], n),
        np.ones(n, dtype=bool),
        rng.choice([0.0, 1.0, 4.0], n),
        "concurrency",
        float(truth["budget_ms"]),
        1024,
    )
    print(f"predicting {n:,} configs' capacities (with intervals): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
