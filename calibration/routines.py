"""Calibration routines: camera <-> stage, manipulator -> lab, and the height of the dish floor.

Each routine moves devices through a pattern, measures, fits, and returns the fit with per-point residuals
and a verdict: :meth:`accept` raises :class:`CalibrationError` naming the reason when the fit is not good
enough to move a pipette by (residuals above the rig file's limit, too few good points, a pixel size far
from the objective's). Routines are stop-aware (a :class:`StopToken`; the emergency stop ends them) and
read images through ``frames.snap()``, which must return an image taken after the call: the CLI passes
the rig's frame source (software trigger); the operator window passes its stream, since a streaming
camera cannot snap.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Protocol

import cv2
import numpy as np

from calibration.store import CameraCalibration, FloorCalibration, ManipulatorCalibration
from calibration.transforms import CameraStageTransform, ManipulatorTransform
from drivers.errors import MicromanipError
from drivers.frame import Frame
from drivers.stop import Stopped, StopToken
from perception.runtime.detect import tip_from_mask
from perception.runtime.focus import analyse_sweep, brenner

log = logging.getLogger(__name__)


class CalibrationError(MicromanipError):
    """A calibration could not be measured, or its fit is not good enough to use (the reason says which)."""


class Frames(Protocol):
    pixel_size_um: float  # the objective's nominal pixel size at the sample

    def snap(self) -> Frame:
        """An image taken after this call."""


def _token(token: StopToken | None, clock) -> StopToken:
    return token if token is not None else StopToken(clock)


@contextmanager
def _stop_reason(token: StopToken):
    """A move cut short by a stop fails as a device error; report the stop, which is what happened."""
    try:
        yield
    except MicromanipError:
        if token.stopped:
            raise Stopped(token.reason) from None
        raise


def _back(what: str, move: Callable[[], object]) -> None:
    """Return a device to where the routine found it; after a stop this is refused, and that is no error
    of its own (the stop's reason is what the caller reports)."""
    try:
        move().wait(10)  # type: ignore[attr-defined]
    except MicromanipError as exc:
        log.warning("calibration: %s not returned to its start: %s", what, exc)


# ----- camera <-> stage --------------------------------------------------------------------------------------
@dataclass
class CameraStageFit:
    transform: CameraStageTransform
    residuals_um: np.ndarray  # per stage move, those left out included
    nominal_pixel_um: float
    rejected: tuple[int, ...] = ()  # moves left out of the fit (the image did not follow the others)

    @property
    def used_residuals_um(self) -> np.ndarray:
        return np.delete(self.residuals_um, list(self.rejected))

    def report(self) -> str:
        t, used = self.transform, self.used_residuals_um
        return (f"pixel size {t.pixel_size_um:.5f} um/px (nominal {self.nominal_pixel_um:.5f}), rotation "
                f"{t.rotation_deg:+.3f} deg{', x flipped' if t.flip_x else ''}, residuals max {used.max():.3f} um, "
                f"rms {np.sqrt(np.mean(used ** 2)):.3f} um over {len(used)} of {len(self.residuals_um)} moves"
                + (f" (moves {list(self.rejected)} left out)" if self.rejected else ""))

    def accept(self, max_residual_um: float, max_scale_error: float = 0.25, min_used: float = 2 / 3) -> None:
        """Raise CalibrationError unless at least ``min_used`` of the moves agree, each within
        ``max_residual_um``, and the pixel size is within ``max_scale_error`` of the objective's."""
        used = self.used_residuals_um
        if len(used) < min_used * len(self.residuals_um):
            raise CalibrationError(
                f"camera-stage fit refused: only {len(used)} of {len(self.residuals_um)} moves agree ({self.report()}); "
                "use a static sample with texture in focus (settled debris, a scratch)")
        worst = float(used.max())
        if worst > max_residual_um:
            raise CalibrationError(
                f"camera-stage fit refused: residual {worst:.2f} um exceeds the limit {max_residual_um:g} um "
                f"({self.report()}); use a static sample with texture in focus (settled debris, a scratch)")
        ratio = self.transform.pixel_size_um / self.nominal_pixel_um
        if abs(ratio - 1) > max_scale_error:
            raise CalibrationError(
                f"camera-stage fit refused: pixel size {self.transform.pixel_size_um:.4f} um/px is {ratio:.2f} x "
                f"the objective's {self.nominal_pixel_um:.4f} um/px; check the objective in the rig file and the "
                "stage's units")

    def entry(self) -> CameraCalibration:
        t = self.transform
        return CameraCalibration(pixel_size_um=t.pixel_size_um, rotation_deg=t.rotation_deg, flip_x=t.flip_x,
                                 residuals_um=tuple(round(float(r), 4) for r in self.used_residuals_um),
                                 note=self.report())


def _static_image(frames: Frames, token: StopToken, n: int, gap_s: float) -> np.ndarray:
    """The median of ``n`` images ``gap_s`` apart, high-passed: what stays put (the sample) stays, a cell
    swimming through is removed."""
    images = []
    for i in range(n):
        if i:
            token.sleep(gap_s)
        images.append(frames.snap().pixels.astype(np.float32))
    f = np.median(np.stack(images), axis=0) if n > 1 else images[0]
    return f - cv2.GaussianBlur(f, (0, 0), 8)


def image_shift_px(ref: np.ndarray, img: np.ndarray, expected_px: float) -> tuple[np.ndarray, float]:
    """Shift of ``img`` relative to ``ref`` (px, x then y) by phase correlation, looking for the peak only
    between half and twice the expected shift: content that does not move with the stage (the pipette,
    dirt on the camera) peaks at zero shift and is ignored. Returns the shift and the peak's height over
    the correlation surface's spread (a clear peak is > 10)."""
    h, w = ref.shape
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    fa, fb = np.fft.rfft2(ref * win), np.fft.rfft2(img * win)
    cross = np.conj(fa) * fb
    surface = np.fft.fftshift(np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=(h, w)))
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx - w // 2, yy - h // 2)
    searched = np.where((r >= 0.5 * expected_px) & (r <= 2.0 * expected_px), surface, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(searched)), surface.shape)
    sub = []
    for c, size, axis in ((ix, w, 1), (iy, h, 0)):  # parabolic refinement on each axis
        lo, hi = (c - 1) % size, (c + 1) % size
        a, b, d = ((surface[iy, lo], surface[iy, ix], surface[iy, hi]) if axis == 1 else
                   (surface[lo, ix], surface[iy, ix], surface[hi, ix]))
        denom = a - 2 * b + d
        sub.append(0.5 * (a - d) / denom if denom < 0 else 0.0)
    shift = np.array([ix - w // 2 + sub[0], iy - h // 2 + sub[1]])
    spread = float(np.std(surface)) + 1e-12
    return shift, float(surface[iy, ix] / spread)


def calibrate_camera_stage(stage, frames: Frames, sensor_shape: tuple[int, int], step_um: float | None = None,
                           token: StopToken | None = None, images_per_position: int = 7,
                           gap_s: float = 0.1) -> CameraStageFit:
    """Move the stage by known steps, measure the image shift, fit scale, rotation and flip.

    The image of a sample point moves opposite to the stage: shift_px = -M^-1 step_um, M = p R S. At each
    position the median of a few images ``gap_s`` apart keeps the sample and drops swimming cells. The
    step defaults to 1/8 of the smaller side of the view (twice that for the longer moves), so that most
    of the view overlaps.
    """
    token = _token(token, stage.clock)
    nominal = frames.pixel_size_um
    x0, y0 = stage.position_um()
    ref = _static_image(frames, token, images_per_position, gap_s)
    if step_um is None:
        step_um = min(ref.shape) * nominal / 8
    unit = [[1, 0], [0, 1], [-1, 0], [0, -1], [1, 1], [-1, 1], [1, -1], [-1, -1], [2, 0], [0, 2], [-2, 0], [0, -2]]
    steps = np.array(unit, float) * step_um
    shifts, clarity = [], []
    with _stop_reason(token):
        try:
            for dx, dy in steps:
                token.check()
                stage.move_to_um(x0 + dx, y0 + dy).wait(10)
                img = _static_image(frames, token, images_per_position, gap_s)
                shift, peak = image_shift_px(ref, img, float(np.hypot(dx, dy)) / nominal)
                shifts.append(shift)
                clarity.append(peak)
        finally:
            _back("stage", lambda: stage.move_to_um(x0, y0))
    shifts = np.asarray(shifts)
    use = _consistent_moves(shifts, steps, np.asarray(clarity) > 4.0, inlier_um=max(0.02 * step_um, 0.5))
    if use.sum() < 5:
        raise CalibrationError(f"camera-stage: the image followed the stage consistently in only {int(use.sum())} "
                               f"of {len(steps)} moves; use a static sample with texture in focus (settled debris,"
                               " a scratch)")
    # least squares over the consistent moves: step_um = -M shift_px  ->  M = -(pinv(shifts) steps)^T
    m, *_ = np.linalg.lstsq(shifts[use], -steps[use], rcond=None)
    m = m.T
    res = np.linalg.norm(shifts @ m.T + steps, axis=1)
    pixel = float(np.sqrt(abs(np.linalg.det(m))))
    flip = bool(np.linalg.det(m) < 0)
    # M = p R S with S = diag(-1, 1) when flipped: R's first column is M's first column over -p
    col = m[:, 0] * (-1.0 if flip else 1.0)
    rotation = float(np.degrees(np.arctan2(col[1], col[0])))
    tf = CameraStageTransform(pixel, sensor_shape[1], sensor_shape[0], rotation, flip)
    return CameraStageFit(tf, res, nominal, tuple(int(i) for i in np.flatnonzero(~use)))


def _consistent_moves(shifts: np.ndarray, steps: np.ndarray, candidate: np.ndarray, inlier_um: float) -> np.ndarray:
    """RANSAC over pairs of moves: the map from two non-parallel moves that most other moves agree with
    (within ``inlier_um``). A move whose correlation locked onto something else (a cell that stayed in
    view, a repeating pattern) disagrees and is left out."""
    best = np.zeros(len(steps), bool)
    idx = np.flatnonzero(candidate)
    for a in idx:
        for b in idx[idx > a]:
            pair = shifts[[a, b]]
            if abs(np.linalg.det(pair)) < 1e-3 * np.linalg.norm(pair) ** 2:
                continue
            m = -(np.linalg.solve(pair, steps[[a, b]])).T
            agree = candidate & (np.linalg.norm(shifts @ m.T + steps, axis=1) < inlier_um)
            if agree.sum() > best.sum():
                best = agree
    return best


# ----- manipulator -> lab -----------------------------------------------------------------------------------
@dataclass
class ManipulatorFit:
    transform: ManipulatorTransform
    residuals_um: np.ndarray  # per point (inf for a point RANSAC left out)
    manip_um: np.ndarray
    lab_um: np.ndarray
    missed: tuple[int, ...] = field(default=())  # pattern points where the tip was not found

    @property
    def outliers(self) -> np.ndarray:
        return np.flatnonzero(~np.isfinite(self.residuals_um))

    def report(self) -> str:
        good = self.residuals_um[np.isfinite(self.residuals_um)]
        return (f"affine fit over {len(good)} of {len(self.residuals_um)} points, residuals max {good.max():.3f} um, "
                f"rms {np.sqrt(np.mean(good ** 2)):.3f} um"
                + (f"; outliers at points {self.outliers.tolist()}" if self.outliers.size else "")
                + (f"; tip not found at pattern points {list(self.missed)}" if self.missed else ""))

    def accept(self, max_residual_um: float, min_points: int = 7) -> None:
        good = self.residuals_um[np.isfinite(self.residuals_um)]
        if len(good) < min_points:
            raise CalibrationError(f"manipulator fit refused: only {len(good)} usable points (need {min_points}); "
                                   f"{self.report()}")
        if good.max() > max_residual_um:
            raise CalibrationError(f"manipulator fit refused: residual {good.max():.2f} um exceeds the limit "
                                   f"{max_residual_um:g} um ({self.report()})")
        singular = np.linalg.svd(self.transform.matrix, compute_uv=False)
        if singular.min() < 0.5 or singular.max() > 2.0:
            raise CalibrationError(f"manipulator fit refused: the axes scale by {singular.min():.2f}-{singular.max():.2f} "
                                   "um per um (expected about 1): check the manipulator's units")

    def entry(self) -> ManipulatorCalibration:
        t = self.transform
        return ManipulatorCalibration(matrix=tuple(tuple(float(v) for v in row) for row in t.matrix),
                                      offset_um=tuple(float(v) for v in t.offset_um),
                                      residuals_um=tuple(round(float(r), 4) for r in self.residuals_um
                                                         if np.isfinite(r)), note=self.report())


def fit_affine_3d(manip_um: np.ndarray, lab_um: np.ndarray, threshold_um: float = 1.0
                  ) -> tuple[ManipulatorTransform, np.ndarray]:
    """lab = A manip + b with RANSAC (OpenCV's estimateAffine3D): a point measured wrong (the tip detector
    caught a passing cell) is left out instead of bending the fit. Residuals of outliers are inf."""
    manip_um, lab_um = np.asarray(manip_um, np.float64), np.asarray(lab_um, np.float64)
    if len(manip_um) < 4:
        raise CalibrationError(f"an affine 3-D fit needs at least 4 points, got {len(manip_um)}")
    centre = manip_um.mean(axis=0)  # centred: RANSAC's threshold and conditioning do not depend on where
    ok, affine, inliers = cv2.estimateAffine3D(manip_um - centre, lab_um, ransacThreshold=threshold_um,
                                               confidence=0.999)
    if not ok or affine is None:
        raise CalibrationError("the 3-D affine fit found no consistent set of points")
    inliers = inliers.ravel().astype(bool)
    tf = ManipulatorTransform(affine[:, :3], affine[:, 3] - affine[:, :3] @ centre)
    # refine on the inliers by least squares (RANSAC's model comes from a minimal sample)
    if inliers.sum() >= 4:
        tf, _ = ManipulatorTransform.fit(manip_um[inliers], lab_um[inliers])
    res = np.linalg.norm(tf.to_lab(manip_um) - lab_um, axis=1)
    res[~inliers] = np.inf
    return tf, res


def calibrate_manipulator(manipulator, focus, frames: Frames, camera_tf: CameraStageTransform,
                          detect_tip: Callable[[np.ndarray], tuple[float, float] | None],
                          span_um: tuple[float, float, float] = (20.0, 12.0, 4.0), token: StopToken | None = None,
                          speed_um_s: float = 100.0) -> ManipulatorFit:
    """Move the tip through a 3-D pattern around where it is (in focus, in view): XY from the image (at the
    focus where the tip is sharpest), Z from a focus sweep on the tip; fit an affine map with RANSAC."""
    token = _token(token, manipulator.clock)
    start = manipulator.position_um().copy()
    z_focus0 = focus.z_um()
    sx, sy, sz = span_um
    pattern = [np.array([i * sx, j * sy, k * sz]) for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]
    pattern += [np.zeros(3), np.array([0.0, 0.0, sz]), np.array([sx, 0.0, 0.0])]
    manip_pts, lab_pts, missed = [], [], []
    with _stop_reason(token):
        try:
            for i, offset in enumerate(pattern):
                token.check()
                manipulator.move_to_um(start + offset, speed_um_s).wait(10)
                focus.move_to_um(z_focus0 + offset[2]).wait(5)
                tip = detect_tip(frames.snap().pixels)
                if tip is None:
                    log.warning("calibration: tip not found at offset %s", offset)
                    missed.append(i)
                    continue
                z_best = _tip_focus(focus, frames, tip, z_focus0 + offset[2], token)
                if z_best is None:
                    missed.append(i)
                    continue
                focus.move_to_um(z_best).wait(5)
                frame = frames.snap()
                tip_sharp = detect_tip(frame.pixels)
                if tip_sharp is None:
                    missed.append(i)
                    continue
                lab_xy = camera_tf.px_to_lab_um(np.asarray(tip_sharp), frame.roi_offset_px)[0]
                manip_pts.append(manipulator.position_um().copy())
                lab_pts.append([lab_xy[0], lab_xy[1], z_best])
        finally:
            _back("manipulator", lambda: manipulator.move_to_um(start, speed_um_s))
            _back("focus", lambda: focus.move_to_um(z_focus0))
    if len(manip_pts) < 6:
        raise CalibrationError(f"tip found at only {len(manip_pts)} of {len(pattern)} points: centre the tip in "
                               "the view, focus on it, and make the pattern smaller")
    tf, res = fit_affine_3d(np.asarray(manip_pts), np.asarray(lab_pts))
    return ManipulatorFit(tf, res, np.asarray(manip_pts), np.asarray(lab_pts), tuple(missed))


def _tip_focus(focus, frames: Frames, tip: tuple[float, float], z_centre_um: float, token: StopToken,
               half_range_um: float = 3.0, step_um: float = 0.25, n: int = 96) -> float | None:
    """Focus height (lab z) where a window on the tip is sharpest; None without a clear peak."""
    zs, scores = [], []
    for z in np.arange(z_centre_um - half_range_um, z_centre_um + half_range_um + 1e-9, step_um):
        token.check()
        focus.move_to_um(float(z)).wait(5)
        frame = frames.snap()
        h, w = frame.pixels.shape
        x = int(np.clip(tip[0] - n / 2, 0, w - n))
        y = int(np.clip(tip[1] - n / 2, 0, h - n))
        scores.append(brenner(frame.pixels[y : y + n, x : x + n]))
        zs.append(frame.focus_z_um)
    sweep = analyse_sweep(np.asarray(zs), np.asarray(scores))
    edge = min(abs(sweep.best_z_um - zs[0]), abs(sweep.best_z_um - zs[-1])) < step_um
    return None if edge or not sweep.reliable else sweep.best_z_um


def focus_on_tip(focus, frames: Frames, detect_tip: Callable[[np.ndarray], tuple[float, float] | None],
                 token: StopToken | None = None, half_range_um: float = 15.0, step_um: float = 1.0) -> float:
    """Bring the tip into focus (the manipulator calibration starts from there): a coarse sweep around the
    current focus on a window at the tip, then a fine one. The focus stays at the tip's plane."""
    token = _token(token, focus.clock)
    tip = detect_tip(frames.snap().pixels)
    if tip is None:
        raise CalibrationError("no pipette tip in view: bring the tip near the centre of the view")
    z0 = focus.z_um()
    lo, hi = focus.limits.min_um, focus.limits.max_um
    coarse = _tip_focus(focus, frames, tip, float(np.clip(z0, lo + half_range_um, hi - half_range_um)), token,
                        half_range_um, step_um)
    if coarse is None:
        focus.move_to_um(z0).wait(5)
        raise CalibrationError(f"the tip shows no clear focus within +-{half_range_um:g} um: focus on it roughly first")
    fine = _tip_focus(focus, frames, tip, coarse, token, 1.5, 0.25)
    best = coarse if fine is None else fine
    focus.move_to_um(best).wait(5)
    return best


def classical_tip_px(pixels: np.ndarray, threshold: float = 4.0) -> tuple[float, float] | None:
    """The pipette tip without a network: high-contrast regions are thresholded, then the same tip rule
    as the runtime's (largest blob from the border, farthest point) applies."""
    found = tip_from_mask(_contrast_mask(pixels, threshold), min_area_px=500)
    return found[0] if found else None


def pipette_mask(pixels: np.ndarray, threshold: float = 4.0) -> np.ndarray:
    """Where the pipette is: the largest high-contrast region entering from the image border (bool)."""
    mask = _contrast_mask(pixels, threshold)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    border = [i for i in range(1, n) if stats[i, cv2.CC_STAT_LEFT] == 0 or stats[i, cv2.CC_STAT_TOP] == 0
              or stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] == w
              or stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] == h]
    if not border:
        return np.zeros(mask.shape, bool)
    i = max(border, key=lambda k: stats[k, cv2.CC_STAT_AREA])
    if stats[i, cv2.CC_STAT_AREA] < 500:
        return np.zeros(mask.shape, bool)
    return cv2.dilate((labels == i).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0


def _contrast_mask(pixels: np.ndarray, threshold: float) -> np.ndarray:
    f = pixels.astype(np.float32)
    bg = float(np.median(f))
    noise = float(np.median(np.abs(f - bg))) * 1.4826 + 1e-3
    dev = np.abs(cv2.GaussianBlur(f, (0, 0), 2) - bg)
    return cv2.morphologyEx((dev > threshold * noise).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))


# ----- dish floor -------------------------------------------------------------------------------------------
@dataclass
class FloorFit:
    z_um: float  # lab z (the focus drive's frame) of the dish floor
    z_scan_um: np.ndarray
    tile_peaks_um: np.ndarray  # sharpest plane of each part of the view that has a clear one, and kept it
    agreeing_um: np.ndarray  # the planes of the parts that agree on the floor (within 0.5 um of each other)
    moved: int = 0  # parts whose sharpest plane was dropped: their content moved while the sweep passed it

    @property
    def agreeing(self) -> int:
        return len(self.agreeing_um)

    @property
    def residuals_um(self) -> np.ndarray:
        """How far each agreeing part's plane lies from the floor: the fit's uncertainty, which the floor
        limit adds to its margin (a part sees one of a phase object's two sharpness lobes, ~1 um off, when
        the other does not stand out)."""
        return np.abs(self.agreeing_um - self.z_um)

    def report(self) -> str:
        spread = f", residuals max {self.residuals_um.max():.2f} um" if self.agreeing else ""
        moved = f"; {self.moved} dropped: something moved in them" if self.moved else ""
        return (f"dish floor at z={self.z_um:.2f} um (focus sweep {self.z_scan_um[0]:.1f}..{self.z_scan_um[-1]:.1f} um;"
                f" {self.agreeing} of {len(self.tile_peaks_um) + self.moved} sharp regions agree{spread}{moved})")

    def accept(self, min_agreeing: int = 3) -> None:
        if self.agreeing < min_agreeing:
            why = ("cells swam through the view during the sweep" if self.moved
                   else "too few sharp regions agree on a plane")
            raise CalibrationError(f"floor refused: {why} ({self.report()}); raise the pipette, focus near settled "
                                   "debris or a mark on the dish floor in a field without cells, and run it again")

    def entry(self) -> FloorCalibration:
        residuals = tuple(round(float(r), 4) for r in self.residuals_um)
        return FloorCalibration(z_um=round(self.z_um, 4), residuals_um=residuals, note=self.report())


#: a part of the view moved between the two frames taken at a plane when the 99th percentile of their
#: smoothed difference exceeds this many times the sweep's median (the camera's noise: most parts hold
#: still), and at least MOTION_MIN_GREY grey levels. Settled debris on the twin: at most 0.8 grey levels
#: (median 0.67); a cell swimming through, 3-45.
MOTION_FACTOR = 3.0
MOTION_MIN_GREY = 2.0
#: a part's vote is dropped when it moved within this distance of the plane it voted for: the planes of
#: both sharpness lobes of a phase object (about 1 um to either side) decide the vote
MOTION_NEAR_UM = 1.25


def floor_height(focus, frames: Frames, span_um: tuple[float, float] = (-4.0, 4.0), step_um: float = 0.25,
                 token: StopToken | None = None, tiles: tuple[int, int] = (8, 6)) -> FloorFit:
    """Focus sweep around the current focus, scored in tiles of the view: each tile whose sharpness curve
    shows a clear focal plane inside the sweep (:func:`focal_plane`) votes for it, and the floor is the
    lowest plane at least three tiles agree on (settled debris lies on it). Tiles the pipette crosses do not
    vote: its glass is sharp above the floor, and the floor is never where the glass is.

    Two frames are taken at each plane, and a tile whose content moved between them near the plane it
    votes for does not vote: a cell swimming through the sweep makes a sharpness peak at whatever plane it
    passed, and three such votes could agree. On the twin, in the trials' field of swimming cells (8 seeds),
    the floor came out 1.1-1.4 um below the true one in 2 sweeps; with the moving tiles dropped, 7 of the 8
    are refused, saying why, and the eighth gives 0.28 um (settled debris: 0-1.2 um)."""
    token = _token(token, focus.clock)
    z0 = focus.z_um()
    zs, scores, motion = [], [], []
    glass: np.ndarray | None = None
    with _stop_reason(token):
        try:
            for dz in np.arange(span_um[0], span_um[1] + 1e-9, step_um):
                token.check()
                focus.move_to_um(z0 + float(dz)).wait(5)
                frame = frames.snap()
                zs.append(frame.focus_z_um)
                scores.append(_tile_sharpness(frame.pixels, tiles))
                motion.append(_tile_motion(frame.pixels, frames.snap().pixels, tiles))
                mask = pipette_mask(frame.pixels)
                glass = mask if glass is None else glass | mask
        finally:
            _back("focus", lambda: focus.move_to_um(z0))
    z, s, m = np.asarray(zs), np.asarray(scores), np.asarray(motion)  # s, m: (planes, tiles)
    moving = m > max(MOTION_FACTOR * float(np.median(m)), MOTION_MIN_GREY)
    crossed = _tile_sharpness(glass.astype(np.float32), tiles, energy=False) > 0.02 if glass is not None else []
    peaks, moved = [], 0
    for tile, curve in enumerate(s.T):
        if len(crossed) and crossed[tile]:
            continue
        plane = focal_plane(z, curve, margin_um=2 * step_um)
        if plane is None:
            continue
        if moving[np.abs(z - plane) <= MOTION_NEAR_UM, tile].any():
            moved += 1
        else:
            peaks.append(plane)
    peaks_arr = np.sort(np.asarray(peaks))
    for candidate in peaks_arr:
        near = peaks_arr[np.abs(peaks_arr - candidate) <= 0.5]
        if len(near) >= 3:
            return FloorFit(float(np.median(near)), z, peaks_arr, near, moved)
    return FloorFit(float(peaks_arr[0]) if len(peaks_arr) else float(z0), z, peaks_arr, np.empty(0), moved)


def focal_plane(z_um: np.ndarray, scores: np.ndarray, margin_um: float = 0.5, lobe_gap_um: tuple[float, float] =
                (1.0, 4.0), min_lobe: float = 0.15) -> float | None:
    """The plane a sharpness curve (Tenengrad over z) says its object lies in; None without a clear one.

    Unstained debris, cells and glass are mostly phase objects: in bright field they nearly vanish in
    focus and show most contrast about one depth of field to either side, so the curve has two lobes with
    a dip at the object's plane (measured on the twin's settled debris: lobes 1.0-1.1 um below and above
    the particle). Their heights differ by the part of the contrast that is odd in defocus, whose sign the
    microscope's geometry sets: the highest point is the upper lobe on an inverted microscope, the lower on
    an upright one, about 1 um from the object either way. So where a second lobe stands out (at least
    ``min_lobe`` of the first's height above the curve's median, ``lobe_gap_um`` away, with a dip between
    them), the plane is midway between the lobes; an absorbing object gives one peak, its plane. Each
    peak used must lie ``margin_um`` inside the sweep (a maximum at the sweep's end is a slope)."""
    z_um, scores = np.asarray(z_um, float), np.asarray(scores, float)

    def inside(z: float) -> bool:
        return min(abs(z - z_um[0]), abs(z - z_um[-1])) >= margin_um

    first = analyse_sweep(z_um, scores)
    if not (first.reliable and inside(first.best_z_um)):
        return None
    i1 = int(np.argmax(scores))
    lift = scores - np.median(scores)
    second = None
    for i in range(1, len(scores) - 1):
        lo, hi = sorted((i1, i))
        if (lobe_gap_um[0] <= abs(z_um[i] - z_um[i1]) <= lobe_gap_um[1]
                and scores[i] >= max(scores[i - 1], scores[i + 1])  # a local maximum
                and lift[i] >= min_lobe * lift[i1]
                and scores[i] - scores[lo:hi + 1].min() >= 0.5 * lift[i]  # a dip between the lobes
                and (second is None or scores[i] > scores[second])):
            second = i
    if second is None:
        return first.best_z_um
    other = analyse_sweep(z_um[second - 1:second + 2], scores[second - 1:second + 2]).best_z_um
    return 0.5 * (first.best_z_um + other) if inside(other) else None


def _tile_motion(a: np.ndarray, b: np.ndarray, tiles: tuple[int, int]) -> np.ndarray:
    """Per tile, the 99th percentile of the difference of two frames smoothed over 1.5 px (noise averages
    out; a moving head or tail, a few percent of a tile, stands out)."""
    smooth = [cv2.GaussianBlur(f.astype(np.float32), (0, 0), 1.5) for f in (a, b)]
    d = np.abs(smooth[0] - smooth[1])
    h, w = d.shape
    nx, ny = tiles
    return np.array([np.percentile(d[j * h // ny:(j + 1) * h // ny, i * w // nx:(i + 1) * w // nx], 99)
                     for j in range(ny) for i in range(nx)])


def _tile_sharpness(pixels: np.ndarray, tiles: tuple[int, int], energy: bool = True) -> np.ndarray:
    """Mean gradient energy (Tenengrad) per tile; ``energy=False``: the tiles' mean value."""
    f = pixels.astype(np.float32)
    if energy:
        f = cv2.Sobel(f, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(f, cv2.CV_32F, 0, 1) ** 2
    h, w = f.shape
    nx, ny = tiles
    return np.array([f[j * h // ny:(j + 1) * h // ny, i * w // nx:(i + 1) * w // nx].mean()
                     for j in range(ny) for i in range(nx)])
