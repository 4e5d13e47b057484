"""Aspiration campaigns on the simulated rig with the shipped models: every depth source side by side.

    .venv/bin/python benchmarks/campaigns.py --n 50 [--sources net,oracle,dff,none] [--immotile]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.trials import run_campaign

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sources", default="net,oracle,dff,none")
    ap.add_argument("--motility", default="motile,immotile")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = {}
    print("| cells | depth source | n | success | 95% CI | median time s | median abs depth error um | failures | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for motility in args.motility.split(","):
        for source in args.sources.split(","):
            s = run_campaign(ROOT / "configs" / "sim.yaml", args.n, args.seed, motility, source, None, args.workers,
                             progress=False)
            rows[f"{motility}/{source}"] = s
            t = f"{s['median_time_s']:.1f}" if s["median_time_s"] else "-"
            e = f"{s['median_abs_depth_error_um']:.2f}" if s["median_abs_depth_error_um"] is not None else "-"
            print(f"| {motility} | {source} | {s['n']} | {s['success_rate']:.0%} | {s['ci95'][0]:.0%}-{s['ci95'][1]:.0%} | "
                  f"{t} | {e} | {s['failures'] or '-'} | {s['wall_s']:.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
