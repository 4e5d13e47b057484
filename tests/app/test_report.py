"""The report: figures and a Markdown summary drawn from a trial log (here one written directly through
TrialLog, as campaigns write it), with scipy's Wilson intervals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from app.report import load_groups, write_report
from app.trial_log import TrialLog

ROOT = Path(__file__).resolve().parents[2]


def fake_log(db: Path) -> None:
    """A sweep over swimming speed (3 values x 20 trials) and one campaign on its own."""
    rng = np.random.default_rng(0)
    with TrialLog(db) as log:
        sweep_id = log.sweep("k", "speed", "sweep.yaml", {"rig": "sim", "trials_per_condition": 20, "seed": 1,
                                                          "factors": ["scene.swim_speed_scale"]}, {"micromanip": "0.1.0"})
        for i, (speed, p_ok) in enumerate([(0.5, 0.95), (1.0, 0.8), (2.0, 0.4)]):
            cid = log.campaign(f"c{i}", "sim.yaml", 20, 1, "motile", "net", {}, None,
                               {"condition": {"factors": {"scene.swim_speed_scale": speed}}}, sweep_id=sweep_id,
                               label=f"swim_speed_scale={speed}", software={"micromanip": "0.1.0", "commit": "abc"},
                               engine="ray")
            log.set_setup(cid, {"source": "nominal", "camera": {"pixel_size_um": 0.1465, "rotation_deg": 0.0},
                                "miscalibration": {"camera_rotation_deg": 0.0}}, {"trials": {}})
            for j in range(20):
                ok = rng.random() < p_ok
                log.record(cid, {"index": j, "seed": j, "rig": "sim.yaml", "start": "s", "end": "e",
                                 "outcome": "success" if ok else "failed",
                                 "failure_mode": None if ok else ["swept_out", "timeout"][j % 2], "target_id": 1,
                                 "depth_error_um": float(rng.normal(0, 0.5)), "duration_s": float(rng.uniform(3, 9)),
                                 "events": []})
            if i == 2:  # a worker lost twice
                log.record(cid, {"index": 20, "seed": 20, "rig": "sim.yaml", "start": "s", "end": "e",
                                 "outcome": "error", "failure_mode": "worker_lost", "target_id": None,
                                 "depth_error_um": None, "duration_s": None, "events": [], "error": "WorkerCrashedError"})
        cid = log.campaign("lone", "sim.yaml", 5, 2, "immotile", "oracle", {}, {"kind": "nominal"}, {})
        for j in range(5):
            log.record(cid, {"index": j, "seed": j, "rig": "sim.yaml", "start": "s", "end": "e", "outcome": "success",
                             "failure_mode": None, "target_id": 1, "depth_error_um": 0.1, "duration_s": 4.0,
                             "events": []})


def test_report_has_every_figure_and_the_wilson_table(tmp_path):
    db = tmp_path / "log.db"
    fake_log(db)
    groups = load_groups(db)
    assert [g.title for g in groups] == ["Sweep speed", "Campaigns"]
    assert [c.n for c in groups[0].conditions] == [20, 20, 21]
    path = write_report(db, tmp_path / "out")
    text = path.read_text()
    for name in ("speed-conditions.png", "speed-success.png", "speed-failures.png", "speed-time.png",
                 "speed-depth.png", "campaigns-conditions.png"):
        assert (tmp_path / "out" / name).stat().st_size > 5000, name
        assert f"]({name})" in text
    # the table's interval is scipy's Wilson interval of the condition's counts
    row = next(line for line in text.splitlines() if line.startswith("| swim_speed_scale=2.0 |"))
    k = groups[0].conditions[2].successes
    ci = binomtest(k, 21).proportion_ci(method="wilson")
    assert row.startswith(f"| swim_speed_scale=2.0 | 21 | {k / 21:.0%} | {ci.low:.0%} - {ci.high:.0%} |")
    assert "error: worker_lost 1" in row
    assert not (tmp_path / "out" / "campaigns-success.png").exists()  # nothing swept there
    assert "commit `abc`" in text and "engine ray" in text and "calibration used: nominal" in text


def test_report_of_a_missing_or_foreign_file_is_one_line(tmp_path):
    (tmp_path / "not.db").write_bytes(b"not a database at all")
    for target in (tmp_path / "none.db", tmp_path / "not.db"):
        out = subprocess.run([sys.executable, "-m", "app.cli", "report", str(target), "--out", str(tmp_path / "o")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_log_without_finished_trials_is_refused(tmp_path):
    db = tmp_path / "log.db"
    with TrialLog(db) as log:
        log.campaign("k", "sim.yaml", 3, 0, "motile", "net", {}, None, {})
    from drivers.errors import MicromanipError

    with pytest.raises(MicromanipError, match="no finished trials"):
        write_report(db, tmp_path / "out")
