"""Search efficiency on the simulator model, against its cached brute-force truth.

The brute force (benchmarks/brute_force.py, cached in benchmarks/data/simulator_truth.*) measured
every config of the space at every concurrency level up to saturation, perf_analyzer-style. This
script runs tritune's default sweep on the same space and budget (Optuna, a spec with no
window_s and no max_trials: the search stops by itself, levels are aimed, windows are sized by
requests, and the top configs are confirmed), then prints:

- wall time against the brute force's, and the windows and seconds spent per level by each;
- the pick, whether it is in the brute-force tie set (configs within 3 % of the best), and the
  sweep's own tie set;
- the pick's capacity re-measured side by side with the brute-force best on one fresh server,
  interleaved A B A B ... (`--verify` rounds, medians and their ratio): one sweep's numbers and
  one brute force's are each a single noisy draw, so only a side-by-side measurement compares
  the two choices.

    python benchmarks/search_efficiency.py                    # one sweep, 3 verify rounds
    python benchmarks/search_efficiency.py --runs 3 --out /tmp/eff
    python benchmarks/search_efficiency.py --runs 3 --strategies optuna,model   # interleaved
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brute_force import DATA_STEM, MODEL, MODEL_REPOSITORY, candidates, load_truth, tie_set  # noqa: E402

from analyzer.judge.confirm_stats import search_rows  # noqa: E402
from analyzer.spec.spec import parse_spec  # noqa: E402
from analyzer.sweep.setup import SweepOptions, run_sweep  # noqa: E402


def default_spec(truth: dict[str, Any], protocol: str, seed: int, strategy: str = "optuna") -> dict[str, Any]:
    """The sweep a new user would write for this model: the space and budget, nothing else
    (and the strategy compared)."""
    return {
        "model": MODEL,
        "model_repository": str(MODEL_REPOSITORY),
        "protocol": protocol,
        "budget_ms": float(truth["budget_ms"]),
        "percentile": 99,
        "strategy": strategy,
        "seed": seed,
        "space": truth["space"],
        "load": {"mode": "concurrency"},
    }


def one_sweep(
    truth: dict[str, Any], args: argparse.Namespace, out: Path, seed: int, strategy: str
) -> dict[str, Any]:
    """Run the default sweep once with a strategy; its wall time, summary and per-level costs."""
    spec = parse_spec(default_spec(truth, args.protocol, seed, strategy), "<search efficiency>")
    t0 = time.monotonic()
    result, store = run_sweep(spec, SweepOptions(out=str(out)))
    wall = time.monotonic() - t0
    m = store.measurements()
    search = search_rows(m)
    return {
        "wall_s": wall,
        "summary": result.summary,
        "run_dir": store.dir,
        "levels": len(m),
        "search_levels": len(search),
        "windows_per_level": float(pd.to_numeric(m["windows"]).mean()) if len(m) else float("nan"),
        "measured_s_per_level": float(pd.to_numeric(m["duration_s"]).mean()) if len(m) else float("nan"),
        "wall_s_per_level": wall / len(m) if len(m) else float("nan"),
    }


def verify(run_dir: Path, cands: list[Any], rounds: int) -> dict[str, list[float]]:
    """Capacity of each config searched from scratch on one fresh server, interleaved by round,
    with the sweep's own level search and measurement rules."""
    from analyzer.config.modelconfig import apply_candidate, read_pbtxt, to_dict
    from analyzer.judge.levelsearch import LevelSearch, search_capacity
    from analyzer.judge.verdict import budget_verdict
    from analyzer.load.clients import make_client
    from analyzer.load.shapes import LoadSpec
    from analyzer.measure.levels import Probe, make_tensors, measure_level
    from analyzer.server.session import open_server, prepare_model
    from analyzer.spec.spec import load_spec
    from analyzer.sweep.loop import measure_settings

    spec = load_spec(run_dir / "spec.yaml")
    base = read_pbtxt(run_dir / "base_config.pbtxt")
    settings = measure_settings(spec)
    plan = spec.load
    results: dict[str, list[float]] = {c.config_id: [] for c in cands}
    with open_server(
        protocol=spec.protocol, model_repository=spec.model_repository, log_path=run_dir / "verify.log"
    ) as session:
        info = prepare_model(session, spec.model, spec.inputs, load=True)
        for _ in range(rounds):
            for cand in cands:
                config_id = cand.config_id
                session.control.load_model(spec.model, to_dict(apply_candidate(base, cand)))

                async def one() -> float:
                    client = make_client(
                        spec.protocol,
                        session.url,
                        spec.model,
                        make_tensors(info.specs),
                        settings.request_timeout_s,
                    )
                    try:
                        with Probe(session.endpoint, spec.protocol, spec.model, session.pid) as probe:

                            async def measure(level: float):  # type: ignore[no-untyped-def]
                                return await measure_level(
                                    client,
                                    probe,
                                    LoadSpec(plan.mode, level),
                                    settings,
                                    decide=lambda m: budget_verdict(
                                        m, spec.budget_ms, spec.percentile, spec.confidence
                                    ),
                                )

                            search = LevelSearch(
                                plan.mode,
                                plan.min_level,
                                plan.cap,
                                start=plan.min_level,
                                refine_steps=plan.refine_steps,
                                budget_ms=spec.budget_ms,
                                resolution=plan.resolution_pct / 100.0,
                            )
                            result = await search_capacity(
                                measure, search, spec.budget_ms, spec.percentile, spec.confidence
                            )
                    finally:
                        await client.close()
                    return result.capacity_rps

                results[config_id].append(asyncio.run(one()))
                print(f"  verify {config_id}: {results[config_id][-1]:.1f} req/s", flush=True)
    return results


def main() -> int:
    """Run the comparison and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--truth", type=Path, default=DATA_STEM, help="brute-force stem (STEM.csv, STEM.json)"
    )
    parser.add_argument("--runs", type=int, default=1, help="sweeps per strategy (different seeds)")
    parser.add_argument(
        "--strategies",
        default="optuna",
        help="comma-separated strategies, run interleaved (A B A B ...) with the same seeds",
    )
    parser.add_argument("--verify", type=int, default=3, help="interleaved re-measure rounds (0: skip)")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="http")
    parser.add_argument("--out", type=Path, help="keep the run directories here (default: a temp dir)")
    args = parser.parse_args()

    _, truth = load_truth(args.truth)
    bf_best = truth["best"]["config_id"]
    bf_ties = tie_set(truth, 0.03)
    n_configs = len(truth["configs"])
    print(f"{MODEL}: {n_configs} configs, budget p99 <= {truth['budget_ms']:g} ms, protocol {args.protocol}")
    print(
        f"brute force ({truth['date']}): {truth['wall_s']:.0f} s, {truth['levels']} levels, "
        f"{truth['measure']['window_s']:g} s windows, {truth['seconds_per_level']} s measured and "
        f"{truth['wall_s_per_level']} s of wall time per level; best {bf_best} "
        f"{truth['best']['capacity_rps']:.1f} req/s; within 3 %: {', '.join(bf_ties)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="tritune-eff-") as tmp:
        out = args.out or Path(tmp)
        runs = []
        strategies = args.strategies.split(",")
        by_strategy: dict[str, list[float]] = {name: [] for name in strategies}
        for i, strategy in ((i, name) for i in range(args.runs) for name in strategies):
            r = one_sweep(truth, args, out, seed=i, strategy=strategy)
            s = r["summary"]
            pick = s["best"]["config_id"] if s["best"] else None
            runs.append((r, pick))
            by_strategy[strategy].append(r["wall_s"])
            print(
                f"sweep {i + 1} ({strategy}): {r['wall_s']:.1f} s "
                f"({r['wall_s'] / truth['wall_s']:.3f} of brute force), "
                f"{s['configs_tried']} configs, {r['levels']} levels ({r['search_levels']} search, "
                f"{r['levels'] - r['search_levels']} confirm), {r['windows_per_level']:.1f} windows and "
                f"{r['measured_s_per_level']:.2f} s measured, {r['wall_s_per_level']:.2f} s of wall time per "
                "level",
                flush=True,
            )
            print(
                f"  pick {pick} ({'in' if pick in bf_ties else 'NOT in'} the brute-force tie set); "
                f"tie set {', '.join(s.get('tie_set') or [])}; stopped: {s.get('stopped_reason')}",
                flush=True,
            )
        for strategy, walls in by_strategy.items():
            print(
                f"{strategy}: median wall {statistics.median(walls):.1f} s = "
                f"{statistics.median(walls) / truth['wall_s']:.3f} of brute force"
            )
        if len(strategies) > 1:
            first = statistics.median(by_strategy[strategies[0]])
            for strategy in strategies[1:]:
                ratio = statistics.median(by_strategy[strategy]) / first
                print(f"median wall {strategy} / {strategies[0]}: {ratio:.2f}")
        if args.verify:
            picks = sorted({p for _, p in runs if p})
            ids = [bf_best] + [p for p in picks if p != bf_best]
            print(f"re-measuring {', '.join(ids)} side by side, {args.verify} interleaved rounds", flush=True)
            by_id = {c.config_id: c for c in candidates(truth["space"])}
            caps = verify(runs[0][0]["run_dir"], [by_id[i] for i in ids], args.verify)
            ref = statistics.median(caps[bf_best])
            for config_id in ids:
                med = statistics.median(caps[config_id])
                print(
                    f"  {config_id}: median {med:.1f} req/s "
                    f"({', '.join(f'{c:.0f}' for c in caps[config_id])}), "
                    f"{med / ref:.3f} of the brute-force best"
                    if ref
                    else f"  {config_id}: median {med:.1f} req/s"
                )
        if args.out:
            print("run directories: " + "  ".join(str(r["run_dir"]) for r, _ in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
