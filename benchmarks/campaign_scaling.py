"""Campaign throughput: trials per minute with 1 and 2 workers, on the local process pool and on Ray
(a private local Ray instance, one CPU per worker), and Ray's overhead per trial over the pool.

    .venv/bin/python benchmarks/campaign_scaling.py [--n 12] [--workers 1,2] [--xy net]

Every configuration runs the same trials (same seeds, shipped models, simulated rig), so they do the same
work. Timed: from the first trial submitted to the last result recorded, worker processes' start and model
loading included (the pool makes its processes per campaign; Ray starts its workers for the campaign's
job); the Ray instance's own start (ray.init) is timed apart, since a cluster outlives campaigns. Goals:
2 workers >= 1.8x one worker; Ray <= 10% slower per trial than the pool (median trial wall time; the whole
campaign's wall time, workers' start included, is shown beside it). Measure on an idle machine: other
work on the cores changes every figure.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from result_store import Headline, Result, Table, save_result  # benchmarks/ (this script's folder)

from app.campaign_engine import make_engine
from app.sweep import campaign_plan

ROOT = Path(__file__).resolve().parent.parent


def run_once(engine_name: str, workers: int, specs) -> dict:
    engine = make_engine(engine_name, workers)
    try:
        t0 = time.perf_counter()
        engine.start()
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = [r for _, r in engine.run(specs)]
        wall = time.perf_counter() - t0
    finally:
        engine.close()
    outcomes = sorted(r["outcome"] for r in results)
    return {"engine": engine_name, "workers": workers, "n": len(results), "wall_s": wall, "engine_start_s": start_s,
            "trials_per_min": 60 * len(results) / wall, "outcomes": outcomes,
            "trial_wall_s_median": sorted(r["wall_s"] for r in results)[len(results) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="trials per configuration")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--xy", default="net", choices=["net", "oracle"], help="perception: shipped models or the oracle")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    args = ap.parse_args()
    rig = ROOT / "configs" / "sim.yaml"
    plan = campaign_plan(rig, args.n, args.seed, "motile", "net")
    if args.xy == "oracle":
        plan.rig_data.setdefault("control", {}).setdefault("trials", {})["xy_source"] = "oracle"
    specs = plan.specs(set())
    load0 = os.getloadavg()[0]
    runs = []
    print("| engine | workers | trials | wall s | trials/min | engine start s | median trial wall s |")
    print("|---|---|---|---|---|---|---|")
    for workers in [int(w) for w in args.workers.split(",")]:
        for engine in args.engines.split(","):
            r = run_once(engine, workers, specs)
            runs.append(r)
            print(f"| {engine} | {workers} | {r['n']} | {r['wall_s']:.0f} | {r['trials_per_min']:.2f} | "
                  f"{r['engine_start_s']:.1f} | {r['trial_wall_s_median']:.1f} |", flush=True)
    load1 = os.getloadavg()[0]
    by = {(r["engine"], r["workers"]): r for r in runs}
    rows, heads = [], []
    for engine in args.engines.split(","):
        if (engine, 1) in by and (engine, 2) in by:
            speedup = by[(engine, 2)]["trials_per_min"] / by[(engine, 1)]["trials_per_min"]
            rows.append([f"{engine}: 2 workers / 1 worker", f"{speedup:.2f}x", ">= 1.8x"])
            heads.append(Headline(f"campaign throughput, 2 workers vs 1 ({engine}, {args.n} trials)",
                                  f"{speedup:.2f}x ({by[(engine, 1)]['trials_per_min']:.1f} -> "
                                  f"{by[(engine, 2)]['trials_per_min']:.1f} trials/min)", ">= 1.8x"))
    for workers in sorted({r["workers"] for r in runs}):
        if ("local", workers) in by and ("ray", workers) in by:
            ray, local = by[("ray", workers)], by[("local", workers)]
            per_trial = ray["trial_wall_s_median"] / local["trial_wall_s_median"] - 1
            whole = ray["wall_s"] / local["wall_s"] - 1
            rows.append([f"Ray over the local pool, {workers} worker(s), per trial (median trial wall)",
                         f"{per_trial:+.1%}", "<= +10%"])
            rows.append([f"Ray over the local pool, {workers} worker(s), whole campaign (workers' start "
                         "included)", f"{whole:+.1%}", "-"])
            if workers == max(r["workers"] for r in runs):
                heads.append(Headline(f"Ray's per-trial overhead over the local pool ({workers} workers)",
                                      f"{per_trial:+.1%} a trial, {whole:+.1%} over the campaign", "<= +10%"))
    notes = (f"Load average (1 min) {load0:.1f} before, {load1:.1f} after, on {os.cpu_count()} cores"
             + (f"; {args.note}" if args.note else "") + ". Figures from a loaded machine are provisional.")
    table = Table("Trials per minute", ["engine", "workers", "trials", "wall s", "trials/min", "engine start s",
                                        "median trial wall s"],
                  [[r["engine"], r["workers"], r["n"], f"{r['wall_s']:.0f}", f"{r['trials_per_min']:.2f}",
                    f"{r['engine_start_s']:.1f}", f"{r['trial_wall_s_median']:.1f}"] for r in runs], notes)
    save_result(Result("campaign_scaling", "Campaign throughput: local pool and Ray, 1 and 2 workers",
                       [table, Table("Scaling and overhead", ["what", "measured", "goal"], rows)], heads,
                       {"args": vars(args), "runs": runs, "loadavg": [load0, load1]}, section="campaigns"))


if __name__ == "__main__":
    main()
