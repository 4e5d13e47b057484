"""Calibration errors for sweeps: what the controller believes, against the true transforms."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from calibration.miscalibration import Miscalibration, describe
from calibration.transforms import CameraStageTransform, ManipulatorTransform


def transforms():
    return CameraStageTransform(0.1465, 1920, 1200), ManipulatorTransform(np.eye(3), np.array([30.0, 0.0, 12.0]))


def test_no_error_leaves_the_transforms_as_they_are():
    cam, manip = transforms()
    cam2, manip2 = Miscalibration().apply(cam, manip)
    assert not Miscalibration()
    assert cam2 == cam and np.allclose(manip2.matrix, manip.matrix) and np.allclose(manip2.offset_um, manip.offset_um)


def test_a_tip_offset_error_moves_the_believed_tip_by_that_much():
    cam, manip = transforms()
    _, wrong = Miscalibration(manipulator_offset_um=(0.0, 0.0, 1.5)).apply(cam, manip)
    m = np.array([5.0, -3.0, 2.0])
    assert np.allclose(wrong.to_lab(m) - manip.to_lab(m), [0.0, 0.0, 1.5])
    # aiming with the wrong map at a lab target puts the real tip 1.5 um below it
    target = np.array([40.0, 5.0, 3.0])
    assert np.allclose(manip.to_lab(wrong.to_manipulator(target)), target - [0.0, 0.0, 1.5])


def test_rotation_and_scale_errors():
    cam, manip = transforms()
    err = Miscalibration(camera_rotation_deg=2.0, camera_scale=0.02, manipulator_rotation_deg=30.0,
                         manipulator_scale=0.1)
    cam2, manip2 = err.apply(cam, manip)
    assert cam2.rotation_deg == 2.0 and cam2.pixel_size_um == pytest.approx(0.1465 * 1.02)
    d = manip2.to_lab(np.array([1.0, 0.0, 0.0])) - manip2.to_lab(np.zeros(3))
    th = np.deg2rad(30.0)
    assert np.allclose(d, [1.1 * np.cos(th), 1.1 * np.sin(th), 0.0])  # x axis turned 30 deg about z, 10% long
    assert describe(cam2, manip2)["camera"]["rotation_deg"] == 2.0


@pytest.mark.parametrize("bad", [{"camera_rotation_deg": float("nan")}, {"camera_scale": 0.9},
                                 {"manipulator_offset_um": (0, 0)}, {"wobble": 1}])
def test_bad_errors_are_refused(bad):
    with pytest.raises(ValidationError):
        Miscalibration(**bad)
