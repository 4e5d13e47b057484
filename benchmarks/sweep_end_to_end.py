"""A sweep end to end through Ray, then its report: by default the 12-condition robustness sweep, 50
trials each (600 trials), on a private local Ray instance with one worker per core.

    nice .venv/bin/python benchmarks/sweep_end_to_end.py [--sweep configs/sweeps/robustness-12.yaml]
        [--trials N] [--ray-address HOST:PORT] [--resume]

``--trials N`` runs N trials per condition instead of the file's (a reduced run; said so in the result).
The trial log goes to runs/sweeps/<name>.db (``--resume`` continues it), the report to runs/sweeps/<name>/,
and its figures are copied to docs/img/sweeps/. Saves docs/results/sweep_<name>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import yaml
from result_store import Headline, Result, Table, save_result  # benchmarks/ (this script's folder)

from app.campaign_engine import make_engine
from app.report import write_report
from app.sweep import format_sweep_table, run_sweep

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", type=Path, default=ROOT / "configs" / "sweeps" / "robustness-12.yaml")
    ap.add_argument("--trials", type=int, default=None, help="trials per condition (default: the file's)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance")
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--figures", type=Path, default=ROOT / "docs" / "img" / "sweeps")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    args = ap.parse_args()
    spec = yaml.safe_load(args.sweep.read_text())
    name = spec["name"]
    runs = ROOT / "runs" / "sweeps"
    runs.mkdir(parents=True, exist_ok=True)
    sweep_path = args.sweep.resolve()
    if args.trials is not None:  # a reduced copy beside the log, its rig resolved as the original's
        spec["trials_per_condition"] = args.trials
        spec["rig"] = str((ROOT / "configs" / f"{spec['rig']}.yaml") if (ROOT / "configs" / f"{spec['rig']}.yaml").is_file()
                          else (args.sweep.parent / spec["rig"]).resolve())
        sweep_path = runs / f"{name}-{args.trials}.yaml"
        sweep_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    tag = name if args.trials is None else f"{name}-{args.trials}"
    db = runs / f"{tag}.db"
    load0 = os.getloadavg()[0]
    engine = make_engine("ray", args.workers, args.ray_address)
    try:
        t0 = time.perf_counter()
        engine.start()
        start_s = time.perf_counter() - t0
        result = run_sweep(sweep_path, db, engine, resume=args.resume)
    finally:
        engine.close()
    t0 = time.perf_counter()
    report = write_report(db, runs / tag)
    report_s = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    print(format_sweep_table(result))
    args.figures.mkdir(parents=True, exist_ok=True)
    figures = []
    for png in sorted(report.parent.glob(f"{name}-*.png")):
        shutil.copy(png, args.figures / png.name)
        figures.append(str((args.figures / png.name).relative_to(ROOT)))
    n = sum(c["n"] for c in result["conditions"])
    ran = n if not args.resume else None
    reduced = "" if args.trials is None else f" (reduced: {args.trials} trials per condition instead of the file's)"
    rows = [[c["label"], c["n"], f"{c['success_rate']:.0%}", f"{c['ci95'][0]:.0%} - {c['ci95'][1]:.0%}",
             f"{c['median_time_s']:.1f}" if c["median_time_s"] is not None else "-",
             ", ".join(f"{k} {v}" for k, v in sorted(c["failures"].items(), key=lambda kv: -kv[1])) or "-"]
            for c in result["conditions"]]
    notes = (f"{len(result['conditions'])} conditions x {result['trials_per_condition']} trials{reduced}, through Ray "
             f"({args.ray_address or f'local instance, {args.workers} CPUs'}): {result['wall_s']:.0f} s for the sweep "
             f"({60 * n / result['wall_s']:.1f} trials/min{'' if ran else ', resumed: the wall time is the last part only'}), "
             f"Ray start {start_s:.0f} s, report {report_s:.0f} s. Load average {load0:.1f} before, {load1:.1f} after, "
             f"on {os.cpu_count()} cores{'; ' + args.note if args.note else ''}. Figures: {', '.join(figures)}.")
    ref = result["conditions"][0]
    save_result(Result(
        f"sweep_{tag}".replace("-", "_"), f"Sweep {name} through Ray{reduced}",
        [Table(f"{name}: success by condition (Wilson 95%)", ["condition", "n", "success", "Wilson 95%",
                                                             "median time to aspirate s", "failures"], rows, notes)],
        [Headline(f"sweep {name} through Ray, {len(result['conditions'])} conditions x {result['trials_per_condition']}"
                  f" trials, then the report", f"{result['wall_s'] / 60:.0f} min, {60 * n / result['wall_s']:.1f} "
                  f"trials/min; {ref['label']} {ref['success_rate']:.0%}", "600 trials end to end")],
        {"args": {k: str(v) for k, v in vars(args).items()}, "result": result, "figures": figures,
         "engine_start_s": start_s, "report_s": report_s, "loadavg": [load0, load1]}, section="campaigns"))


if __name__ == "__main__":
    main()
