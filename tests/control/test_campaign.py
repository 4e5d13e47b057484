"""Campaigns end to end on the simulated rig (oracle XY and depth: independent of trained weights)."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from app.trial_log import TrialLog
from app.trials import TrialSettings, run_campaign, within_time_limit, wilson_interval

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def oracle_rig(tmp_path) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data["control"] = {"trials": {"xy_source": "oracle", "max_trial_s": 12}}
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(46, 50)
    assert lo == pytest.approx(0.8116, abs=1e-3) and hi == pytest.approx(0.9684, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_time_limit_lets_an_aspiration_under_way_finish():
    from control.states import State

    s = TrialSettings(max_trial_s=15.0, finish_attempt_s=4.0)
    assert within_time_limit(14.9, State.SEARCHING, s) and not within_time_limit(15.0, State.SEARCHING, s)
    assert not within_time_limit(15.1, State.APPROACHING, s)  # the pump is not on yet: no new attempt
    assert within_time_limit(15.1, State.ASPIRATING, s) and within_time_limit(18.9, State.VERIFYING, s)
    assert not within_time_limit(19.0, State.VERIFYING, s)


def test_short_campaign_end_to_end(oracle_rig, tmp_path):
    db = tmp_path / "log.db"
    summary = run_campaign(oracle_rig, 2, 3, "motile", "oracle", db, workers=1, progress=False)
    assert {"success_rate", "ci95", "n", "failures", "median_time_s"} <= set(summary)
    assert summary["n"] == 2
    with TrialLog(db) as log_db:
        rows = log_db.results(1)
        assert len(rows) == 2 and all(r["outcome"] in ("success", "failed") for r in rows)
        n_events = log_db.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        assert n_events >= 2 * 4  # every transition is logged with its reason
        csv = log_db.export_csv(tmp_path / "out.csv")
    assert len(csv.read_text().strip().splitlines()) == 3
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.slow
def test_kill_mid_campaign_then_resume(oracle_rig, tmp_path):
    db = tmp_path / "log.db"
    cmd = [sys.executable, "-m", "app.cli", "trials", "--rig", str(oracle_rig), "--n", "3", "--seed", "5",
           "--depth-source", "oracle", "--db", str(db), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            time.sleep(0.5)
            if db.exists():
                try:
                    if sqlite3.connect(db).execute("SELECT COUNT(*) FROM trials").fetchone()[0] >= 1:
                        break
                except sqlite3.OperationalError:
                    pass
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    first = sqlite3.connect(db).execute("SELECT trial_index FROM trials").fetchall()
    assert 1 <= len(first) < 3  # killed mid-campaign, finished trials kept
    out = subprocess.run(cmd + ["--resume", "--json", str(tmp_path / "s.json")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = sqlite3.connect(db).execute("SELECT trial_index FROM trials ORDER BY trial_index").fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]  # resumed: no trial lost, none repeated
    assert json.loads((tmp_path / "s.json").read_text())["n"] == 3


@pytest.mark.parametrize("motility, focus_um", [("motile", 3.0), ("immotile", 0.5)])
def test_the_operator_focuses_on_the_cells_and_leaves_the_tip_above_them(sim_rig, motility, focus_um):
    import numpy as np

    from app.trials import operator_setup

    s = TrialSettings()
    cam_tf, manip_tf = sim_rig.calibration.camera_tf, sim_rig.calibration.manip_tf
    for seed in range(4):
        operator_setup(sim_rig, cam_tf, manip_tf, s, motility, np.random.default_rng(seed))
        focus = sim_rig.focus.z_um()
        tip = sim_rig.world.manipulator.tip_lab_um()
        # the camera frames the tip as perception does: 60% across, a third of the view behind the opening
        roi = sim_rig.camera.roi
        tip_px = cam_tf.lab_um_to_px(tip[:2], (roi.x, roi.y))[0]
        assert (roi.width, roi.height) == s.roi_px[2:]
        assert tip_px[0] == pytest.approx(0.6 * roi.width, abs=16) and tip_px[1] == pytest.approx(roi.height / 2, abs=2)
        assert abs(focus - focus_um) < 4 * s.focus_error_um
        (x0, x1), (y0, y1), (z0, z1) = s.tip_start_lab_um
        assert x0 - 0.1 <= tip[0] <= x1 + 0.1 and y0 - 0.1 <= tip[1] <= y1 + 0.1
        floor = sim_rig.safety.tip_floor_um + 0.5
        assert tip[2] >= floor - 0.1  # never below the floor limit
        assert z0 - 0.1 <= tip[2] - focus <= z1 + 0.1 or tip[2] == pytest.approx(floor, abs=0.1)
