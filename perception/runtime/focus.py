"""Depth from focus: focus measures and a focus sweep with the focus drive (baseline for immotile cells).

A sweep costs real time: each plane waits for the focus drive to arrive and settle, then for a camera
frame exposed there (one plane per frame), and the drive returns at the end. A cell that swims or rolls
meanwhile leaves the window or changes its contrast from plane to plane, so its curve is not the cell's.
Such a curve can still have a peak (another cell or debris in the window, the cell half out of it), so a
sweep also compares the window in a frame taken at the starting plane before and after it: the curve is
a reading only of a window whose content stayed put, as an operator looks again before trusting it.

Measures (higher = sharper): Tenengrad (Sobel energy), variance of the Laplacian, grey-level gradient
(mean absolute gradient), Brenner (squared difference at 2 px), entropy (histogram), normalised variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np


def _f(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32)


def tenengrad(img: np.ndarray) -> float:
    f = _f(img)
    gx, gy = cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1)
    return float(np.mean(gx**2 + gy**2))


def laplacian_variance(img: np.ndarray) -> float:
    return float(cv2.Laplacian(_f(img), cv2.CV_32F).var())


def grey_level_gradient(img: np.ndarray) -> float:
    gy, gx = np.gradient(_f(img))
    return float(np.mean(np.abs(gx) + np.abs(gy)))


def brenner(img: np.ndarray) -> float:
    f = _f(img)
    return float(np.mean((f[:, 2:] - f[:, :-2]) ** 2))


def entropy(img: np.ndarray) -> float:
    hist = np.bincount(np.clip(img.astype(np.int64).ravel(), 0, 65535))
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def normalised_variance(img: np.ndarray) -> float:
    f = _f(img)
    return float(f.var() / max(f.mean(), 1e-6))


FOCUS_MEASURES: dict[str, Callable[[np.ndarray], float]] = {
    "tenengrad": tenengrad, "laplacian_variance": laplacian_variance, "grey_level_gradient": grey_level_gradient,
    "brenner": brenner, "entropy": entropy, "normalised_variance": normalised_variance,
}


#: the least correlation between the window before and after a sweep for its curve to count. A still field
#: differs only by camera noise; a head that moved by its own width (about 3 um) in the sweep's ~0.6 s, or
#: turned, has left the pixels it covered. Measured on the twin's default scene (seeds 0-2, a sweep on each of
#: the first 12 cells, 2026-12-07; tests/perception/test_focus.py keeps it): immotile heads 0.82-0.98,
#: every motile one (rapid, slow and non-progressive, 24 cells) -0.09 to 0.12. Midway.
WINDOW_KEPT_MIN = 0.5


def window_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two windows of one field, lightly smoothed so camera noise counts less than
    what the window shows; 0 for a flat window."""
    fa, fb = (cv2.GaussianBlur(_f(x), (0, 0), 1.0).ravel() for x in (a, b))
    fa, fb = fa - fa.mean(), fb - fb.mean()
    den = float(np.sqrt((fa @ fa) * (fb @ fb)))
    return float(fa @ fb) / den if den > 0 else 0.0


@dataclass
class SweepResult:
    z_um: np.ndarray
    scores: np.ndarray
    best_z_um: float
    peak_ratio: float  # peak over median: near 1 means no reliable peak
    interior: bool  # the maximum lies inside the sweep, not at its first or last plane
    # correlation of the window at the starting plane before and after the sweep (1: nothing moved)
    window_kept: float = 1.0

    @property
    def reliable(self) -> bool:
        """A peak stands out and lies inside the sweep of a window whose content stayed put: a maximum at
        either end is the slope of a curve whose peak lies beyond the sweep, or of a cell that left the
        window; a window that changed meanwhile scored a moving scene, not one object's focus."""
        return self.interior and self.peak_ratio > 1.3 and self.window_kept >= WINDOW_KEPT_MIN


def analyse_sweep(z_um: np.ndarray, scores: np.ndarray, window_kept: float = 1.0) -> SweepResult:
    """Peak of a focus curve with parabolic refinement around the maximum; ``window_kept``: see
    :class:`SweepResult` (a still object, such as the pipette during calibration, keeps 1)."""
    z_um, scores = np.asarray(z_um, float), np.asarray(scores, float)
    i = int(np.argmax(scores))
    best = z_um[i]
    if 0 < i < len(z_um) - 1:
        a, b, c = scores[i - 1], scores[i], scores[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            best = z_um[i] + 0.5 * (a - c) / denom * (z_um[1] - z_um[0])
    return SweepResult(z_um, scores, float(best), float(scores.max() / max(np.median(scores), 1e-9)),
                       0 < i < len(z_um) - 1, window_kept)


def focus_sweep(focus, frames, z_offsets_um: np.ndarray, region: tuple[int, int, int, int],
                measure: str = "tenengrad", token=None) -> SweepResult:
    """Step the focus drive through ``z_offsets_um`` around its current position, score ``region``
    (x, y, w, h) in one frame taken after the drive has settled at each plane, return to the start and
    analyse the curve, with the window compared in a frame at the start before and after. Stop-aware via
    ``token``. The planes are scored where the frames say the focus was."""
    fn = FOCUS_MEASURES[measure]
    x, y, w, h = region
    z0 = focus.z_um()
    before = frames.snap().pixels[y : y + h, x : x + w]
    zs, scores = [], []
    try:
        for dz in z_offsets_um:
            if token is not None:
                token.check()
            focus.move_to_um(z0 + float(dz)).wait(5.0)
            frame = frames.snap()
            scores.append(fn(frame.pixels[y : y + h, x : x + w]))
            zs.append(frame.focus_z_um)
    finally:
        focus.move_to_um(z0).wait(5.0)
    after = frames.snap().pixels[y : y + h, x : x + w]
    return analyse_sweep(np.asarray(zs), np.asarray(scores), window_correlation(before, after))
