"""Calibration on the simulated rig, checked against the twin's ground truth, with its quality gates and
its store."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from app.config import load_rig_config, parse_rig_config
from app.rig import build_rig
from app.trials import trial_config
from calibration.routines import (CalibrationError, CameraStageFit, calibrate_camera_stage, calibrate_manipulator,
                                  classical_tip_px, fit_affine_3d, floor_height, focal_plane)
from calibration.store import CalibrationStore, FloorCalibration, ManipulatorCalibration
from calibration.transforms import CameraStageTransform
from drivers.errors import ConfigError, LimitError
from drivers.interfaces import Roi

ROOT = Path(__file__).resolve().parents[2]


def rig(tmp_path=None, rotation_deg=0.0, yaw_deg=0.0, n_sperm=6, n_debris=250, microscope="inverted"):
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data["camera"]["rotation_deg"] = rotation_deg
    data["manipulator"]["axes_yaw_deg"] = yaw_deg
    # a static calibration sample: settled debris and immotile cells
    data["scene"] = {"n_sperm": n_sperm, "n_debris": n_debris, "field_half_size_um": [160, 110],
                     "motility_mix": {"immotile": 1.0}, "optics": {"microscope": microscope}}
    if tmp_path is not None:
        data["control"] = {"calibration": {"store": str(tmp_path / "calibration.json")}}
    return build_rig(parse_rig_config(data), seed=2)


@pytest.mark.parametrize("rotation", [0.0, 3.0])
def test_camera_stage_calibration_recovers_scale_and_rotation(rotation):
    with rig(rotation_deg=rotation) as r:
        r.camera.set_roi(Roi(640, 408, 640, 384))
        r.focus.move_to_um(1.5).wait(5)
        fit = calibrate_camera_stage(r.stage, r.frames, r.camera.sensor_shape)
    assert fit.transform.pixel_size_um == pytest.approx(0.1465, rel=0.01)
    assert fit.transform.rotation_deg == pytest.approx(rotation, abs=0.3)  # same convention as the camera
    assert not fit.transform.flip_x
    assert fit.residuals_um.max() < 0.5
    fit.accept(max_residual_um=1.0)


@pytest.mark.parametrize("seed", [0, 2])
def test_camera_stage_calibration_on_the_operator_windows_sample(seed):
    """The window's own sample (swimming cells, the pipette in view): the fit used to come out at
    0.077 um/px, -41.8 deg, 16.8 um residuals; it must pass the 1 um gate.

    The operator focuses as the wizard asks, on the static texture: the settled debris (centres 0.3-0.9 um)
    look sharpest about 1 um above their plane on this inverted microscope, so at 1.5 um. At the swimmers'
    plane (``focus_start_um``, 3 um) they are 2-3 um out of focus and nearly invisible, and a field with a
    few debris is rightly refused ("use a static sample with texture in focus")."""
    config, settings = trial_config(load_rig_config(ROOT / "configs" / "sim.yaml"), "motile", "lockstep")
    with build_rig(config, seed=seed) as r:
        r.camera.set_roi(Roi(*settings.roi_px))
        r.focus.move_to_um(1.5).wait(5)
        fit = calibrate_camera_stage(r.stage, r.frames, r.camera.sensor_shape)
    fit.accept(max_residual_um=1.0)
    assert fit.transform.pixel_size_um == pytest.approx(0.1465, rel=0.01)
    assert abs(fit.transform.rotation_deg) < 0.5


def test_camera_stage_fit_without_texture_is_refused_with_the_reason():
    with rig(n_sperm=0, n_debris=0) as r:  # an empty dish: nothing moves with the stage but the glass stays
        r.camera.set_roi(Roi(640, 408, 640, 384))
        with pytest.raises(CalibrationError, match="static sample with texture"):
            fit = calibrate_camera_stage(r.stage, r.frames, r.camera.sensor_shape, images_per_position=1)
            fit.accept(max_residual_um=1.0)


def test_camera_stage_gate_names_the_residual_and_the_scale():
    tf = CameraStageTransform(0.1465, 1920, 1200)
    with pytest.raises(CalibrationError, match=r"residual 2\.00 um exceeds the limit 1 um"):
        CameraStageFit(tf, np.array([0.1] * 11 + [2.0]), 0.1465).accept(1.0)
    with pytest.raises(CalibrationError, match="only 6 of 12 moves agree"):
        CameraStageFit(tf, np.full(12, 0.1), 0.1465, rejected=tuple(range(6))).accept(1.0)
    with pytest.raises(CalibrationError, match=r"2\.00 x the objective's"):
        CameraStageFit(CameraStageTransform(0.293, 1920, 1200), np.full(12, 0.1), 0.1465).accept(1.0)


@pytest.mark.slow
def test_manipulator_calibration_against_ground_truth():
    with rig(yaw_deg=5.0) as r:
        r.camera.set_roi(Roi(640, 408, 640, 384))
        r.manipulator.move_by_um([-28.0, 0.0, 0.0]).wait(5)  # tip near the centre of the view
        r.focus.move_to_um(1.5).wait(5)  # the static debris on the floor calibrates the camera
        cam = calibrate_camera_stage(r.stage, r.frames, r.camera.sensor_shape).transform
        r.focus.move_to_um(12.0).wait(5)  # then focus on the tip
        fit = calibrate_manipulator(r.manipulator, r.focus, r.frames, cam, classical_tip_px)
        fit.accept(max_residual_um=1.0)
        # truth: where the twin puts the tip for manipulator positions not used in the fit
        test_pts = r.manipulator.position_um() + np.array([[5.0, -4.0, 1.0], [-12.0, 6.0, -2.0], [0.0, 0.0, 3.0]])
        truth = []
        for p in test_pts:
            r.manipulator.move_to_um(p).wait(5)
            truth.append(r.manipulator.tip_lab_um())
        matrix, _ = r.world.manipulator.mounting()
    assert np.allclose(fit.transform.matrix, matrix, atol=0.01), fit.transform.matrix
    # the offset decides where the tip goes: every axis within the 1 um gate of the truth
    err = np.abs(fit.transform.to_lab(test_pts) - np.array(truth))
    assert err.max() < 1.0, (err, fit.report())
    assert fit.residuals_um.max() < 0.5, fit.report()


def test_affine_fit_leaves_a_wrong_point_out():
    """RANSAC (cv2.estimateAffine3D): a point where the tip detector caught a passing cell does not bend the
    fit; its residual is reported as an outlier."""
    rng = np.random.default_rng(0)
    a = np.array([[0.99, -0.08, 0.0], [0.08, 0.99, 0.0], [0.0, 0.02, 1.0]])
    m = rng.uniform(-20, 20, (11, 3)) + 10_000
    lab = m @ a.T + [5, -3, 10] + rng.normal(0, 0.05, (11, 3))
    tf, res = fit_affine_3d(m, lab)
    assert np.allclose(tf.matrix, a, atol=0.01) and res.max() < 0.2
    lab[3] += [3.0, 0, 0]
    tf, res = fit_affine_3d(m, lab)
    assert not np.isfinite(res[3]) and np.isfinite(np.delete(res, 3)).all()
    assert np.allclose(tf.matrix, a, atol=0.01)
    assert np.allclose(tf.to_lab(m[3]), lab[3] - [3.0, 0, 0], atol=0.2)


@pytest.mark.parametrize("microscope", ["inverted", "upright"])
def test_floor_height_from_settled_debris(microscope):
    with rig(n_sperm=0, microscope=microscope) as r:  # a field without cells, focused near the floor
        r.camera.set_roi(Roi(640, 408, 640, 384))
        r.focus.move_to_um(1.0).wait(5)
        fit = floor_height(r.focus, r.frames, (-3.0, 5.0), 0.25)
        assert r.focus.z_um() == pytest.approx(1.0, abs=0.05)  # the focus returns where it was
    fit.accept()
    # settled debris particles (radius 0.2-0.8 um) sit with their centres 0.3-0.9 um above the floor at z = 0.
    # Their sharpest image lies ~1 um above them on an inverted microscope and ~1 um below on an upright one
    # (fits of 1.50 and -0.25 um); the floor is their plane, whichever way the light goes
    assert 0.0 < fit.z_um < 1.2, fit.report()
    # the agreeing parts' distances from it are the fit's residuals, which the floor limit adds to its margin
    # (tests/calibration/test_calibration.py::test_the_floor_limit_rises_by_the_calibrations_worst_residual)
    entry = fit.entry()
    assert len(entry.residuals_um) == fit.agreeing >= 3 and 0.0 < max(entry.residuals_um) <= 1.0
    assert "residuals max" in entry.note
    assert fit.moved == 0  # nothing moves in a settled field: no part loses its vote


def test_floor_sweep_through_swimming_cells_is_refused_not_wrong():
    """A field of swimming cells, as an operator might forget to avoid: the sweep's parts where a cell swam
    through near their sharpest plane lose their votes (seed 0 without that: the floor 1.38 um below the
    true one, three tiles agreeing on passing cells), and the fit is refused saying why."""
    config, _ = trial_config(load_rig_config(ROOT / "configs" / "sim.yaml"), "motile", "lockstep")
    with build_rig(config, seed=0) as r:
        r.camera.set_roi(Roi(704, 456, 512, 288))
        r.manipulator.move_by_um([0.0, 0.0, 150.0]).wait(5)  # raised, as the instructions say
        r.focus.move_to_um(1.0).wait(5)
        fit = floor_height(r.focus, r.frames)
    assert fit.moved >= 10 and fit.agreeing < 3, fit.report()
    with pytest.raises(CalibrationError, match="cells swam through the view during the sweep"):
        fit.accept()


def test_focal_plane_of_a_phase_object_lies_between_its_two_sharpness_lobes():
    z = np.arange(-2.0, 4.01, 0.25)
    lobes = 1.0 + 3.0 * np.exp(-((z - 1.6) / 0.4) ** 2) + 1.5 * np.exp(-((z + 0.4) / 0.4) ** 2)
    assert focal_plane(z, lobes) == pytest.approx(0.6, abs=0.05)  # not the higher lobe at 1.6
    absorbing = 1.0 + 3.0 * np.exp(-((z - 0.6) / 0.6) ** 2)
    assert focal_plane(z, absorbing) == pytest.approx(0.6, abs=0.05)
    assert focal_plane(z, np.ones_like(z)) is None  # no peak
    assert focal_plane(z, 1.0 + 3.0 * np.exp(-((z - 3.9) / 0.4) ** 2)) is None  # the peak at the sweep's end


def test_floor_without_anything_in_focus_is_refused():
    with rig(n_sperm=0, n_debris=0) as r:
        r.camera.set_roi(Roi(640, 408, 640, 384))
        r.manipulator.move_by_um([0.0, 0.0, 150.0]).wait(5)  # the pipette raised, out of focus
        r.focus.move_to_um(1.0).wait(5)
        fit = floor_height(r.focus, r.frames, (-3.0, 5.0), 0.5)
    with pytest.raises(CalibrationError, match="floor refused"):
        fit.accept()


def test_store_keeps_history_and_the_rig_loads_it(tmp_path):
    store = CalibrationStore(tmp_path / "calibration.json", "test-rig")
    store.save("40x NA0.65", "floor", FloorCalibration(z_um=2.0))
    store.save("40x NA0.65", "floor", FloorCalibration(z_um=5.0))
    assert store.load("40x NA0.65").floor.z_um == 5.0
    assert [(part, entry.z_um) for part, _, entry in store.history("40x NA0.65")] == [("floor", 2.0)]
    assert store.load("10x NA0.3").floor is None
    with rig(tmp_path) as r:
        assert r.calibration.floor_z_um == 5.0 and "calibrated" in r.calibration.sources["floor"]
        assert r.safety.tip_floor_um == pytest.approx(5.0 + 4.0 + 0.3)
        # the twin's manipulator sits 12 um above z = 0: with the floor measured at 5 um, 3 um down is too far
        with pytest.raises(LimitError, match="below the floor limit 9.30"):
            r.manipulator.move_by_um([0.0, 0.0, -3.0])
        r.manipulator.move_by_um([0.0, 0.0, -2.5]).wait(5)


def test_the_floor_limit_rises_by_the_calibrations_worst_residual(tmp_path):
    """The guard checks moves through the transforms the controller uses and cannot see their error: a
    manipulator fit accepted with residuals up to 0.8 um keeps the tip 0.8 um higher."""
    store = CalibrationStore(tmp_path / "calibration.json", "test-rig")
    store.save("40x NA0.65", "floor", FloorCalibration(z_um=5.0))
    with rig(tmp_path) as r:
        twin = r.calibration.manip_tf
        store.save("40x NA0.65", "manipulator", ManipulatorCalibration(
            matrix=tuple(map(tuple, twin.matrix.tolist())), offset_um=tuple(twin.offset_um.tolist()),
            residuals_um=(0.2, 0.8, 0.5)))
        r.reload_calibration()
        assert r.safety.tip_floor_um == pytest.approx(5.0 + 4.0 + 0.3 + 0.8)
        with pytest.raises(LimitError, match="below the floor limit 10.10"):
            r.manipulator.move_by_um([0.0, 0.0, -2.5])  # allowed with an exact calibration (above)
        r.manipulator.move_by_um([0.0, 0.0, -1.5]).wait(5)
        store.save("40x NA0.65", "floor", FloorCalibration(z_um=5.0, residuals_um=(0.1, 1.0, 0.4)))
        r.reload_calibration()  # a floor fit whose agreeing parts lie up to 1 um from it
        assert r.safety.tip_floor_um == pytest.approx(5.0 + 4.0 + 0.3 + 1.0)


def test_a_damaged_store_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text('{"current": {"40x NA0.65": {"floor": {"z_um": "high"}}}}')
    with pytest.raises(ConfigError) as info:
        CalibrationStore(path).load("40x NA0.65")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_real_rig_without_calibration_refuses_trials():
    from app.rig import RigCalibration

    cal = RigCalibration(None, None, None, {"camera": "NOT CALIBRATED", "manipulator": "NOT CALIBRATED",
                                            "floor": "NOT CALIBRATED"})
    with pytest.raises(Exception, match="not calibrated: camera, manipulator, floor; run `micromanip calibrate camera"):
        cal.require("my-rig.yaml")


def test_stored_manipulator_calibration_replaces_the_twin_geometry(tmp_path):
    store = CalibrationStore(tmp_path / "calibration.json")
    matrix = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    store.save("40x NA0.65", "manipulator", ManipulatorCalibration(matrix=matrix, offset_um=(0.0, 0.0, -9000.0)))
    with rig(tmp_path) as r:
        assert np.allclose(r.calibration.manip_tf.offset_um, [0, 0, -9000])
        # lab z = 10000 - 9000 = 1000 um: outside the workspace's 200 um; moving further up is refused,
        # moving back down toward it is not
        with pytest.raises(LimitError, match="outside the workspace"):
            r.manipulator.move_by_um([0.0, 0.0, 5.0])
        r.manipulator.move_by_um([0.0, 0.0, -5.0]).wait(5)
