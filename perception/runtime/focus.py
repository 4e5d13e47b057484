"""Depth from focus: focus measures and a focus sweep with the focus drive (baseline for immotile cells).

A sweep costs real time: each plane waits for the focus drive to arrive and settle, then for a camera
frame exposed there (one plane per frame), and the drive returns at the end. A cell that swims or rolls
meanwhile leaves the window or changes its contrast from plane to plane, so its curve has no clean peak.

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


@dataclass
class SweepResult:
    z_um: np.ndarray
    scores: np.ndarray
    best_z_um: float
    peak_ratio: float  # peak over median: near 1 means no reliable peak
    interior: bool  # the maximum lies inside the sweep, not at its first or last plane

    @property
    def reliable(self) -> bool:
        """A peak stands out and lies inside the sweep: a maximum at either end is the slope of a curve
        whose peak lies beyond the sweep, or of a cell that left the window."""
        return self.interior and self.peak_ratio > 1.3


def analyse_sweep(z_um: np.ndarray, scores: np.ndarray) -> SweepResult:
    """Peak of a focus curve with parabolic refinement around the maximum."""
    z_um, scores = np.asarray(z_um, float), np.asarray(scores, float)
    i = int(np.argmax(scores))
    best = z_um[i]
    if 0 < i < len(z_um) - 1:
        a, b, c = scores[i - 1], scores[i], scores[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            best = z_um[i] + 0.5 * (a - c) / denom * (z_um[1] - z_um[0])
    return SweepResult(z_um, scores, float(best), float(scores.max() / max(np.median(scores), 1e-9)),
                       0 < i < len(z_um) - 1)


def focus_sweep(focus, frames, z_offsets_um: np.ndarray, region: tuple[int, int, int, int],
                measure: str = "tenengrad", token=None) -> SweepResult:
    """Step the focus drive through ``z_offsets_um`` around its current position, score ``region``
    (x, y, w, h) in one frame taken after the drive has settled at each plane, return to the start and
    analyse the curve. Stop-aware via ``token``. The planes are scored where the frames say the focus was."""
    fn = FOCUS_MEASURES[measure]
    z0 = focus.z_um()
    zs, scores = [], []
    try:
        for dz in z_offsets_um:
            if token is not None:
                token.check()
            focus.move_to_um(z0 + float(dz)).wait(5.0)
            frame = frames.snap()
            x, y, w, h = region
            scores.append(fn(frame.pixels[y : y + h, x : x + w]))
            zs.append(frame.focus_z_um)
    finally:
        focus.move_to_um(z0).wait(5.0)
    return analyse_sweep(np.asarray(zs), np.asarray(scores))
