"""The three calibrations as the rig runs them, from the CLI (``micromanip calibrate camera|manipulator|floor``)
and from the operator window's wizard alike: run the routine with the rig file's settings, apply its
quality gate, save it to the rig's calibration store under the objective, and re-arm the rig's tip guard
with it. A refused fit raises :class:`CalibrationError` with the reason and saves nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.rig import Rig
from calibration.routines import (CalibrationError, Frames, calibrate_camera_stage, calibrate_manipulator,
                                  classical_tip_px, floor_height, focus_on_tip)
from drivers.stop import StopToken

log = logging.getLogger(__name__)
Part = Literal["camera", "manipulator", "floor"]

INSTRUCTIONS: dict[Part, str] = {
    "floor": "Raise the pipette out of the way, choose a field without cells, and focus on settled debris or a "
             "mark on the dish floor. The focus sweeps around that plane; the floor is the plane the debris lies in "
             "(transparent debris looks sharpest a little above and below it).",
    "camera": "Keep a static, textured sample in view (settled debris, a scratch) and in focus. The stage moves "
              "by small steps around where it is and comes back.",
    "manipulator": "Bring the pipette tip near the centre of the view, roughly in focus, away from the floor. The "
                   "tip moves through a small 3-D pattern around where it is and comes back.",
}


@dataclass
class Outcome:
    part: Part
    report: str
    store: Path


def run_calibration(part: Part, rig: Rig, frames: Frames, token: StopToken) -> Outcome:
    """Calibrate ``part`` on ``rig``; ``frames.snap()`` must give images taken after the call."""
    settings = rig.config.control.calibration
    if part == "floor":
        fit = floor_height(rig.focus, frames, settings.floor_sweep_um, token=token)
        log.info("floor calibration: %s", fit.report())
        fit.accept()
    elif part == "camera":
        fit = calibrate_camera_stage(rig.stage, frames, rig.camera.sensor_shape, settings.camera_step_um, token)
        log.info("camera calibration: %s", fit.report())
        fit.accept(settings.max_residual_um)
    else:
        camera_tf = rig.calibration.camera_tf
        if camera_tf is None:
            raise CalibrationError("calibrate the camera first: the tip's position in the image is read through it")
        focus_on_tip(rig.focus, frames, classical_tip_px, token)
        fit = calibrate_manipulator(rig.manipulator, rig.focus, frames, camera_tf, classical_tip_px,
                                    settings.manipulator_span_um, token,
                                    speed_um_s=min(100.0, rig.safety.max_tip_speed_um_s))
        log.info("manipulator calibration: %s", fit.report())
        fit.accept(settings.max_residual_um)
    path = rig.store.save(rig.objective_key, part, fit.entry())
    rig.reload_calibration()
    return Outcome(part, fit.report(), path)
