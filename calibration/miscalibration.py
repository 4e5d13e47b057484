"""A calibration that is off by a known amount: what the controller believes about the camera and the
manipulator when a calibration routine left residual errors, for robustness sweeps on the digital twin.

The errors act on the transforms the controller uses, never on the twin's true geometry: the world stays
where it is and the controller aims with a wrong map of it. Typical sizes after a careful calibration at
40x: a camera rotation of a few tenths of a degree, a pixel-size (scale) error under 1%, a manipulator
offset of 1-2 um after tip re-positioning, and up to a few degrees between the manipulator's axes and the
stage's when the manipulator is remounted without recalibration.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from calibration.transforms import CameraStageTransform, ManipulatorTransform
from drivers.units import Deg, Um


class Miscalibration(BaseModel):
    """Errors added to the nominal (or fitted) transforms; all zero: the transforms as they are."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    camera_rotation_deg: Deg = Field(0.0, ge=-45, le=45, description="error of the camera's angle to the stage")
    camera_scale: float = Field(0.0, ge=-0.5, le=0.5, description="relative error of the pixel size")
    manipulator_offset_um: tuple[Um, Um, Um] = Field((0.0, 0.0, 0.0), description="error of the tip's origin"
                                                     " in lab x, y, z")
    manipulator_rotation_deg: Deg = Field(0.0, ge=-45, le=45, description="error of the manipulator's axes"
                                          " about the vertical")
    manipulator_scale: float = Field(0.0, ge=-0.5, le=0.5, description="relative error of the axes' scale")

    def __bool__(self) -> bool:
        return self != Miscalibration()

    def apply(self, camera: CameraStageTransform, manipulator: ManipulatorTransform
              ) -> tuple[CameraStageTransform, ManipulatorTransform]:
        """The transforms with these errors: ``believed = error o true``."""
        cam = CameraStageTransform(camera.pixel_size_um * (1.0 + self.camera_scale), camera.sensor_width_px,
                                   camera.sensor_height_px, camera.rotation_deg + self.camera_rotation_deg,
                                   camera.flip_x)
        th = np.deg2rad(self.manipulator_rotation_deg)
        rot = np.array([[np.cos(th), -np.sin(th), 0.0], [np.sin(th), np.cos(th), 0.0], [0.0, 0.0, 1.0]])
        err = rot * (1.0 + self.manipulator_scale)
        manip = ManipulatorTransform(err @ manipulator.matrix,
                                     err @ manipulator.offset_um + np.asarray(self.manipulator_offset_um, float))
        return cam, manip


def describe(camera: CameraStageTransform, manipulator: ManipulatorTransform) -> dict:
    """The transforms as plain numbers, for the trial log."""
    return {"camera": {"pixel_size_um": camera.pixel_size_um, "rotation_deg": camera.rotation_deg,
                       "flip_x": camera.flip_x, "sensor_px": [camera.sensor_width_px, camera.sensor_height_px]},
            "manipulator": {"matrix": np.asarray(manipulator.matrix, float).round(9).tolist(),
                            "offset_um": np.asarray(manipulator.offset_um, float).round(6).tolist()}}
