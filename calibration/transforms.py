"""Camera <-> stage and camera <-> manipulator transforms.

Sample-frame point seen at ROI pixel ``(col, row)``: ``stage_xy + R(theta) S (px - centre) * pixel_size``,
where ``centre`` is the sensor centre in ROI coordinates and ``S`` an optional axis flip. The manipulator
transform is a 3-D affine map from manipulator axes (um) to the lab frame (um, x/y of the image axes at
the stage's position, z up from the dish floor).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraStageTransform:
    pixel_size_um: float
    sensor_width_px: int
    sensor_height_px: int
    rotation_deg: float = 0.0
    flip_x: bool = False

    def _matrix(self) -> np.ndarray:
        th = np.deg2rad(self.rotation_deg)
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        flip = np.diag([-1.0 if self.flip_x else 1.0, 1.0])
        return rot @ flip * self.pixel_size_um

    def px_to_lab_um(self, px: np.ndarray, roi_offset_px: tuple[int, int] = (0, 0)) -> np.ndarray:
        """ROI pixel(s) -> offset (um) from the optical axis in stage axes."""
        px = np.atleast_2d(np.asarray(px, dtype=float))
        centre = np.array([self.sensor_width_px / 2 - roi_offset_px[0], self.sensor_height_px / 2 - roi_offset_px[1]])
        return (px - centre) @ self._matrix().T

    def px_to_stage_um(self, px: np.ndarray, stage_xy_um: tuple[float, float],
                       roi_offset_px: tuple[int, int] = (0, 0)) -> np.ndarray:
        return self.px_to_lab_um(px, roi_offset_px) + np.asarray(stage_xy_um)[None, :]

    def lab_um_to_px(self, lab_um: np.ndarray, roi_offset_px: tuple[int, int] = (0, 0)) -> np.ndarray:
        lab_um = np.atleast_2d(np.asarray(lab_um, dtype=float))
        centre = np.array([self.sensor_width_px / 2 - roi_offset_px[0], self.sensor_height_px / 2 - roi_offset_px[1]])
        return lab_um @ np.linalg.inv(self._matrix()).T + centre


@dataclass
class ManipulatorTransform:
    """lab_um = A @ manip_um + b, fitted by least squares from tip observations."""

    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    offset_um: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def to_lab(self, manip_um: np.ndarray) -> np.ndarray:
        return np.asarray(manip_um, dtype=float) @ self.matrix.T + self.offset_um

    def to_manipulator(self, lab_um: np.ndarray) -> np.ndarray:
        return (np.asarray(lab_um, dtype=float) - self.offset_um) @ np.linalg.inv(self.matrix).T

    @classmethod
    def fit(cls, manip_um: np.ndarray, lab_um: np.ndarray) -> tuple[ManipulatorTransform, np.ndarray]:
        """Least-squares affine fit; returns the transform and per-point residuals (um)."""
        manip_um, lab_um = np.asarray(manip_um, float), np.asarray(lab_um, float)
        if manip_um.shape[0] < 4:
            raise ValueError("an affine 3-D fit needs at least 4 points")
        design = np.hstack([manip_um, np.ones((manip_um.shape[0], 1))])
        sol, *_ = np.linalg.lstsq(design, lab_um, rcond=None)
        tf = cls(matrix=sol[:3].T, offset_um=sol[3])
        residuals = np.linalg.norm(tf.to_lab(manip_um) - lab_um, axis=1)
        return tf, residuals
