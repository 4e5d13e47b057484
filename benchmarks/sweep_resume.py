"""Kill -9 of the driver mid-sweep, then ``--resume``: finished trials lost and trials run twice.

    .venv/bin/python benchmarks/sweep_resume.py [--sweep configs/sweeps/quick.yaml] [--after 4]

Runs ``micromanip sweep`` through Ray (a private local instance) as a process of its own, kills it with
SIGKILL once ``--after`` trials are in the log, then runs it again with ``--resume``. Lost: a trial in the
log before the kill that is missing or changed after; duplicated: a (campaign, trial) logged twice, or a
trial's events logged twice. Saves docs/results/sweep_resume.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from result_store import Headline, Result, Table, save_result  # benchmarks/ (this script's folder)

from app.sweep import load_sweep

ROOT = Path(__file__).resolve().parent.parent


def snapshot(db: Path) -> tuple[list[tuple], list[tuple]]:
    con = sqlite3.connect(db)
    try:
        trials = con.execute("SELECT campaign_id, trial_index, start, end, outcome, failure_mode FROM trials "
                             "ORDER BY campaign_id, trial_index").fetchall()
        events = con.execute("SELECT t.campaign_id, t.trial_index, e.t_s, e.src, e.dst FROM events e "
                             "JOIN trials t ON t.id = e.trial_id").fetchall()
        return trials, events
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", type=Path, default=ROOT / "configs" / "sweeps" / "quick.yaml")
    ap.add_argument("--after", type=int, default=4, help="kill once this many trials are logged")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mm-resume-"))
    db = folder / "log.db"
    cmd = [sys.executable, "-m", "app.cli", "sweep", str(args.sweep), "--db", str(db), "--engine", "ray"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while proc.poll() is None:
        time.sleep(0.2)
        try:
            if db.exists() and len(snapshot(db)[0]) >= args.after:
                break
        except sqlite3.OperationalError:
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_s = time.perf_counter() - t0
    before, events_before = snapshot(db)
    try:  # what the killed driver's local Ray instance left behind (its agents linger up to a minute)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    out = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"resume failed: {out.stderr[-2000:]}")
    after, events_after = snapshot(db)
    keys = [(r[0], r[1]) for r in after]
    expected = sum(plan.n for plan in load_sweep(args.sweep).plans)
    lost = len(set(before) - set(after))
    duplicated = (len(keys) - len(set(keys))) + (len(events_after) - len(set(events_after)))
    rerun = len(after) - len(before)
    print(f"| killed after | in log at kill | in log after resume | expected | lost | duplicated |\n|---|---|---|---|---|---|\n"
          f"| {killed_s:.0f} s | {len(before)} | {len(after)} | {expected} | {lost} | {duplicated} |")
    save_result(Result(
        "sweep_resume", "Driver killed with SIGKILL mid-sweep, then --resume (Ray engine)",
        [Table("Trials across the kill", ["sweep", "killed after s", "in log at the kill", "in log after --resume",
                                          "expected", "lost", "duplicated", "run after the kill"],
               [[args.sweep.name, f"{killed_s:.0f}", len(before), len(after), expected, lost, duplicated, rerun]])],
        [Headline("kill -9 of the driver mid-sweep, then --resume", f"{lost} finished trials lost, {duplicated} "
                  f"duplicated ({len(before)} in the log at the kill, {len(after)}/{expected} after)",
                  "0 lost, 0 duplicated")],
        {"args": {k: str(v) for k, v in vars(args).items()}, "before": len(before), "after": len(after),
         "expected": expected, "lost": lost, "duplicated": duplicated}, section="campaigns"))
    if lost or duplicated or len(after) != expected:
        raise SystemExit("resume lost or repeated trials")


if __name__ == "__main__":
    main()
