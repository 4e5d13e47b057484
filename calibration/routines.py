"""Calibration routines. Each returns its fit together with per-point residuals, so an operator can
see how good it is; ``CalibrationStore`` keeps a timestamped history per rig and objective."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import yaml

from calibration.transforms import CameraStageTransform, ManipulatorTransform
from drivers.errors import MicromanipError
from perception.runtime.detect import tip_from_mask
from perception.runtime.focus import focus_sweep

log = logging.getLogger(__name__)


class CalibrationError(MicromanipError):
    """A calibration routine could not collect enough good measurements."""


def _highpass(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float32)
    return f - cv2.GaussianBlur(f, (0, 0), 8)


@dataclass
class CameraStageFit:
    transform: CameraStageTransform
    residuals_um: np.ndarray  # per stage move
    rejected: tuple[int, ...] = ()  # stage moves left out of the fit (their correlation peak was wrong)

    def report(self) -> str:
        t = self.transform
        return (f"pixel size {t.pixel_size_um:.5f} um/px, rotation {t.rotation_deg:+.3f} deg, "
                f"residuals {np.array2string(self.residuals_um, precision=3)} um (max {self.residuals_um.max():.3f})"
                + (f"; moves {list(self.rejected)} left out of the fit" if self.rejected else ""))


def calibrate_camera_stage(stage, frames, sensor_shape: tuple[int, int], step_um: float = 12.0,
                           token=None) -> CameraStageFit:
    """Move the stage by known steps, measure the image shift by phase correlation, fit scale + rotation.

    The image of a sample point moves opposite to the stage: shift_px = -M^-1 step_um, M = p R.
    """
    x0, y0 = stage.position_um()
    ref = _highpass(frames.snap().pixels)
    window = cv2.createHanningWindow(ref.shape[::-1], cv2.CV_32F)
    steps = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [1, 1], [-1, 1], [1, -1], [-1, -1]], float) * step_um
    shifts = []
    try:
        for dx, dy in steps:
            if token is not None:
                token.check()
            stage.move_to_um(x0 + dx, y0 + dy).wait(10)
            img = _highpass(frames.snap().pixels)
            (sx, sy), _ = cv2.phaseCorrelate(ref, img, window)
            shifts.append((sx, sy))
    finally:
        stage.move_to_um(x0, y0).wait(10)
    shifts = np.asarray(shifts)
    # Least squares: step_um = -M shift_px  ->  M = -steps^T pinv(shifts^T). Phase correlation now and
    # then locks onto a wrong peak (a static pipette, a repeating pattern): such steps are dropped and the
    # fit repeated, as long as four steps remain; their residuals stay in the report.
    use = np.ones(len(steps), bool)
    while True:
        m, *_ = np.linalg.lstsq(shifts[use], -steps[use], rcond=None)
        m = m.T
        res = np.linalg.norm(shifts @ m.T + steps, axis=1)
        worst = int(np.argmax(np.where(use, res, -1.0)))
        limit = max(3.0 * float(np.median(res[use])), 1.0)
        if res[worst] <= limit or use.sum() <= 4:
            break
        log.warning("camera-stage calibration: step %s um gave a shift off by %.1f um; refitting without it",
                    steps[worst].tolist(), res[worst])
        use[worst] = False
    pixel = float(np.sqrt(abs(np.linalg.det(m))))
    rotation = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    flip = bool(np.linalg.det(m) < 0)
    tf = CameraStageTransform(pixel, sensor_shape[1], sensor_shape[0], rotation, flip)
    return CameraStageFit(tf, res, tuple(int(i) for i in np.flatnonzero(~use)))


@dataclass
class ManipulatorFit:
    transform: ManipulatorTransform
    residuals_um: np.ndarray
    manip_um: np.ndarray
    lab_um: np.ndarray

    @property
    def outliers(self) -> np.ndarray:
        med = float(np.median(self.residuals_um))
        return np.flatnonzero(self.residuals_um > max(3 * med, 0.5))

    def report(self) -> str:
        return (f"affine fit over {len(self.residuals_um)} points, residuals "
                f"{np.array2string(self.residuals_um, precision=3)} um (max {self.residuals_um.max():.3f})"
                + (f"; outliers at points {self.outliers.tolist()}" if self.outliers.size else ""))


def calibrate_manipulator(manipulator, focus, frames, camera_tf: CameraStageTransform,
                          detect_tip: Callable[[np.ndarray], tuple[float, float] | None],
                          span_um: tuple[float, float, float] = (20.0, 12.0, 4.0), token=None) -> ManipulatorFit:
    """Move the tip through a 3-D pattern; XY from the image, Z from a focus sweep on the tip; fit affine."""
    start = manipulator.position_um().copy()
    z_focus0 = focus.z_um()  # the operator starts with the tip in focus
    sx, sy, sz = span_um
    pattern = [np.array([i * sx, j * sy, k * sz]) for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]
    pattern.append(np.zeros(3))
    manip_pts, lab_pts = [], []
    try:
        for offset in pattern:
            if token is not None:
                token.check()
            manipulator.move_to_um(start + offset, 200.0).wait(10)
            frame = frames.snap()
            tip = detect_tip(frame.pixels)
            if tip is None:
                log.warning("calibration: tip not found at offset %s", offset)
                continue
            h, w = frame.pixels.shape
            n = 96
            x = int(np.clip(tip[0] - n / 2, 0, w - n))
            y = int(np.clip(tip[1] - n / 2, 0, h - n))
            # The manipulator's z axis is close to vertical: centre the sweep where the tip should be.
            focus.move_to_um(z_focus0 + offset[2]).wait(5)
            sweep = focus_sweep(focus, frames, np.arange(-3.0, 3.01, 0.25), (x, y, n, n), "brenner", token)
            # refocus at the tip for a sharp XY reading
            z_best = sweep.best_z_um
            focus.move_to_um(z_best).wait(5)
            tip_sharp = detect_tip(frames.snap().pixels) or tip
            focus.move_to_um(sweep.z_um[len(sweep.z_um) // 2]).wait(5)
            lab_xy = camera_tf.px_to_lab_um(np.asarray(tip_sharp), frame.roi_offset_px)[0]
            manip_pts.append(manipulator.position_um().copy())
            lab_pts.append([lab_xy[0], lab_xy[1], z_best])
    finally:
        manipulator.move_to_um(start, 200.0).wait(10)
        focus.move_to_um(z_focus0).wait(5)
    if len(manip_pts) < 6:
        raise CalibrationError(f"tip found at only {len(manip_pts)} of {len(pattern)} points: centre the tip in "
                               "the view and make the pattern smaller")
    tf, res = ManipulatorTransform.fit(np.asarray(manip_pts), np.asarray(lab_pts))
    return ManipulatorFit(tf, res, np.asarray(manip_pts), np.asarray(lab_pts))


def classical_tip_px(pixels: np.ndarray, threshold: float = 4.0) -> tuple[float, float] | None:
    """The pipette tip without a network: high-contrast regions are thresholded, then the same tip rule
    as the runtime's (largest blob from the border, farthest point) applies."""
    f = pixels.astype(np.float32)
    bg = float(np.median(f))
    noise = float(np.median(np.abs(f - bg))) * 1.4826 + 1e-3
    dev = np.abs(cv2.GaussianBlur(f, (0, 0), 2) - bg)
    mask = cv2.morphologyEx((dev > threshold * noise).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    found = tip_from_mask(mask, min_area_px=500)
    return found[0] if found else None


def floor_height(focus, frames, z_range_um: tuple[float, float] = (-2.0, 8.0), step_um: float = 0.25) -> float:
    """Focus sweep over the whole view of a field without cells; the floor is the lowest clear
    sharpness peak (settled debris)."""
    h, w = frames.snap().pixels.shape
    z0 = focus.z_um()
    zs = np.arange(z_range_um[0], z_range_um[1] + 1e-9, step_um)
    res = focus_sweep(focus, frames, zs - z0, (0, 0, w, h), "tenengrad")
    s = res.scores
    base, span = float(np.median(s)), float(s.max() - np.median(s))
    peaks = [i for i in range(1, len(s) - 1) if s[i] >= s[i - 1] and s[i] >= s[i + 1] and s[i] - base > 0.1 * span]
    return float(res.z_um[peaks[0]]) if peaks else res.best_z_um


class CalibrationStore:
    """Readable YAML per rig: the current calibration per objective and the history of earlier ones."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict:
        if not self.path.is_file():
            return {"current": {}, "history": []}
        return yaml.safe_load(self.path.read_text()) or {"current": {}, "history": []}

    def save(self, objective: str, camera: CameraStageFit | None = None, manipulator: ManipulatorFit | None = None,
             floor_z_um: float | None = None) -> dict:
        data = self.load()
        entry: dict = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "objective": objective}
        if camera is not None:
            t = camera.transform
            entry["camera_stage"] = {"pixel_size_um": t.pixel_size_um, "rotation_deg": t.rotation_deg,
                                     "flip_x": t.flip_x, "residuals_um": camera.residuals_um.round(4).tolist()}
        if manipulator is not None:
            entry["manipulator"] = {"matrix": manipulator.transform.matrix.round(6).tolist(),
                                    "offset_um": manipulator.transform.offset_um.round(4).tolist(),
                                    "residuals_um": manipulator.residuals_um.round(4).tolist(),
                                    "outliers": manipulator.outliers.tolist()}
            if manipulator.outliers.size:
                log.warning("calibration: outlier points %s", manipulator.outliers.tolist())
        if floor_z_um is not None:
            entry["floor_z_um"] = round(float(floor_z_um), 3)
        previous = data["current"].get(objective)
        if previous:
            data["history"].append(previous)
        data["current"][objective] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(yaml.safe_dump(data, sort_keys=False))
        return entry
