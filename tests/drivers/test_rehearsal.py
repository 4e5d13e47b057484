"""Rehearsal (configs/rehearsal.yaml): the reference rig's real drivers against the protocol servers that
move the digital twin, and pylon's emulated camera fed the twin's frames."""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml
from PIL import Image

os.environ.setdefault("PYLON_CAMEMU", "1")  # before pylon's transport layers load
for library in ("pypylon", "sensapex", "pipython"):
    pytest.importorskip(library)

from app.config import load_rig_config, parse_rig_config  # noqa: E402
from app.rig import build_rig  # noqa: E402
from drivers.errors import ConfigError  # noqa: E402
from drivers.interfaces import Roi  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

REHEARSAL = ROOT / "configs" / "rehearsal.yaml"


@pytest.fixture
def rig():
    with build_rig(load_rig_config(REHEARSAL)) as rig:
        rig.camera.set_roi(Roi(640, 408, 640, 384))
        yield rig


def test_every_device_is_its_real_driver(rig):
    names = [type(d).__name__ for d in rig.devices()]
    assert names == ["TwinFedBasler", "ProScanStage", "PiezoFocus", "SensapexManipulator", "NewEraPump"]
    assert {type(t).__name__ for t in rig.twins} == {"SimCamera", "SimXYStage", "SimFocusDrive", "SimManipulator",
                                                     "SimPump"}


def test_frames_come_through_pylon_unchanged_with_the_twins_truth(rig):
    frame = rig.frames.snap()
    written = np.asarray(Image.open(rig.camera.feed.path))
    assert frame.pixels.shape == (384, 640) and frame.roi_offset_px == (640, 408)
    assert np.array_equal(frame.pixels, written)
    assert frame.truth is not None and len(frame.truth.sperm) > 0
    later = rig.frames.snap()
    assert later.frame_id == frame.frame_id + 1
    assert not np.array_equal(later.pixels, frame.pixels)  # a new rendering, not a replayed file
    twin_camera = next(t for t in rig.twins if t.kind == "camera")
    assert twin_camera.roi == Roi(640, 408, 640, 384)


def test_moves_through_each_driver_reach_the_twin(rig):
    world = rig.world
    rig.stage.move_to_um(120.0, -40.0, 2000.0).wait(5.0)
    assert world.stage_xy_um() == pytest.approx((120.0, -40.0), abs=0.2)
    rig.focus.move_to_um(4.0).wait(5.0)
    assert world.focus_z_um() == pytest.approx(4.0, abs=0.05)
    target = rig.manipulator.position_um() + np.array([15.0, 0.0, -2.0])
    rig.manipulator.move_to_um(target, 300.0).wait(5.0)
    assert np.allclose(world.manipulator.position_um(), target, atol=0.1)
    rig.pump.aspirate(1.2)
    assert world.pump.rate_nl_s() == pytest.approx(1.2)
    rig.pump.stop()
    assert world.pump.rate_nl_s() == 0.0


def test_stop_all_halts_a_stage_move_in_flight(rig):
    start = rig.world.stage_xy_um()
    rig.stage.move_to_um(start[0] + 3000.0, start[1], 1000.0)
    rig.clock.sleep(0.2)
    rig.stop_all()
    rig.clock.sleep(0.1)
    halted = rig.world.stage_xy_um()
    assert not rig.world.stage.is_moving()
    assert 50.0 < halted[0] - start[0] < 1500.0


def _rehearsal_data() -> dict:
    return yaml.safe_load(REHEARSAL.read_text())


@pytest.mark.parametrize("change, message", [
    (lambda d: d["stage"].update(port="/dev/ttyUSB0"), "stage.port: set by the twin's protocol server"),
    (lambda d: d.update(clock="lockstep"), "camera.twin: rehearsal talks to protocol servers in wall time"),
    (lambda d: d.update(camera={"driver": "micromanager", "twin": True}), "camera.twin: no protocol server for "
                                                                           "driver 'micromanager'"),
    (lambda d: d.update(pump={"driver": "sim", "twin": True}), "pump.twin: a sim device is the twin already"),
])
def test_rehearsal_mistakes_name_the_field(change, message):
    data = _rehearsal_data()
    change(data)
    with pytest.raises(ConfigError, match=message):
        parse_rig_config(data)


def test_bad_twin_settings_name_the_field():
    data = _rehearsal_data()
    data["focus"]["twin"] = {"start_um": "high"}
    with pytest.raises(ConfigError, match=r"focus\.twin\.start_um"):
        build_rig(parse_rig_config(data))


def patient_rehearsal(tmp_path, max_trial_s: float | None = None) -> str:
    """The rehearsal rig with a patient liveness watchdog: on a loaded CI the twin renders each frame
    slowly and estimates come late, which is not what these tests are about. ``max_trial_s``: a longer
    trial, for a test that needs the loop to get somewhere in wall-clock time on a loaded machine."""
    data = _rehearsal_data()
    data["control"]["supervisor"].update(camera_loss_s=20, stage_loss_s=20, focus_loss_s=20, perception_loss_s=60,
                                         startup_s=120)
    if max_trial_s is not None:
        data["control"].setdefault("trials", {})["max_trial_s"] = max_trial_s
    path = tmp_path / "rehearsal.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_trial_runs_the_whole_loop_through_the_drivers(tmp_path):
    """One immotile trial: perception on emulated-camera frames, moves over ProScan, GCS and SMCP, the pump
    over NE-1000. On this CPU the loop runs at a few frames per second (the twin's renderer dominates), so
    the test asserts that the loop ran and ended cleanly, not that it aspirated. The trial runs in wall-clock
    time: with the 2 cores shared by other work, 15 s gave the loop too few frames to confirm a target
    (twice, 2026-12-07), so it gets 45 s; alone it ends sooner, on its own outcome."""
    from app.trials import TrialSpec, run_trial

    result = run_trial(TrialSpec(0, 7, patient_rehearsal(tmp_path, max_trial_s=45.0), "immotile", "net"))
    assert result["frames"] > 10
    states = {e["dst"] for e in result["events"]}
    assert "Searching" in states and "Selecting" in states
    assert not (result["failure_mode"] or "").startswith("fault") and result["fault"] is None


def test_an_injected_fault_ends_each_trial_as_a_fault_and_the_campaign_goes_on(tmp_path):
    """``--inject stage:drop_reply@Selecting`` over two trials: each is recorded as failed with failure mode
    fault:stage and the stage's message; the second trial ran on a freshly opened rig."""
    from typer.testing import CliRunner

    from app.cli import app
    from app.trial_log import TrialLog

    db = tmp_path / "trials.db"
    out = CliRunner().invoke(app, ["trials", "--rig", patient_rehearsal(tmp_path), "--n", "2", "--immotile",
                                   "--inject", "stage:drop_reply@Selecting", "--db", str(db), "--workers", "1"])
    assert out.exit_code == 0, out.output
    assert "'fault:stage': 2" in out.output
    with TrialLog(db) as log_db:
        rows = log_db.results(1)
        reasons = [r[0] for r in log_db.db.execute("SELECT reason FROM events WHERE dst = 'Fault'")]
    assert [(r["outcome"], r["failure_mode"]) for r in rows] == [("failed", "fault:stage")] * 2
    assert len(reasons) == 2 and all(r.startswith("stage: ") and "no reply to 'P'" in r for r in reasons)


@pytest.mark.parametrize("command", ["trials", "sweep"])
def test_a_rig_that_no_longer_opens_stops_the_campaign_in_one_line(tmp_path, command):
    """The trials command and a sweep say it alike."""
    import subprocess
    import sys

    data = _rehearsal_data()
    data["stage"] = {"driver": "prior-proscan", "port": str(tmp_path / "unplugged")}
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(data))
    if command == "trials":
        args = ["trials", "--rig", str(rig), "--n", "2", "--inject", "pump:stall@Aspirating"]
    else:
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text("name: s\nrig: rig.yaml\ntrials_per_condition: 1\nconditions:\n  - {label: nominal}\n")
        args = ["sweep", str(sweep), "--db", str(tmp_path / "log.db"), "--workers", "1"]
    run = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("error: campaign stopped: trial 0: the rig did not open: "
                                "stage: open: cannot open serial port"), run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("text, message", [
    ("stage", "expected DEVICE:FAULT"), ("laser:stall", "unknown device 'laser'"),
    ("pump:melt", "unknown fault 'melt'"), ("pump:stall@Dancing", "unknown state 'Dancing'")])
def test_a_bad_injection_is_named(text, message):
    from app.fault_injection import parse_injection
    from drivers.errors import MicromanipError

    with pytest.raises(MicromanipError, match=message):
        parse_injection(text)


def test_injection_needs_a_rehearsed_device():
    from app.trials import run_campaign
    from drivers.errors import MicromanipError

    with pytest.raises(MicromanipError, match="--inject needs a rehearsal rig"):
        run_campaign(ROOT / "configs" / "sim.yaml", 1, 0, "motile", "net", None, 1, progress=False,
                     inject=("pump:stall",))
