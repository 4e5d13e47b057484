"""Heads seen inside the pipette's bore, through the glass: what an aspiration is verified by.

An operator knows a cell was aspirated by seeing it in the pipette. The bore between the glass walls is
an empty channel whose image barely changes along the axis (the taper widens it over tens of um), so a
head drawn into it stands out against the bore's own running median along the axis, however the glass
shades the channel. The segmentation network finds heads in the open; through two layers of glass it
found none in the twin's closed-loop frames, even trained on tiles with heads in bores, while this test
needs no training and reads any bore that is in view.
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.runtime.estimate import BoreSighting

HEAD_BOX_UM = (3.0, 1.6)  # along and across the axis: the window a head's contrast is averaged over
BACKGROUND_UM = 15.0  # running-median window along the axis: three head lengths
MIN_STRIP_UM = 2 * HEAD_BOX_UM[0]  # less bore than this in view is no view of it


def heads_in_bore(pixels: np.ndarray, tip_px: tuple[float, float], axis_deg: float, um_per_px: float,
                  bore_radius_um: float, *, min_contrast: float = 3.5, skip_um: float = 7.0,
                  wall_margin: float = 0.6) -> list[BoreSighting]:
    """Head-sized disturbances inside the bore, strongest first, at least a head length apart.

    The strip sampled runs from ``skip_um`` past the opening (the rim and its glare disturb the bore's
    first ~6 um in the twin, empty or not) to where the axis leaves the frame, ``wall_margin`` of the
    bore's radius either side of the axis: a head drawn in lies on the axis, while the walls' gradient and
    debris or heads beside or beneath a wall lie off it (at 0.85 of the radius an empty bore gave a
    sighting in 13% of the twin's frames, at 0.6 in 11%, a drawn-in head in 86% and 83%). Each row's
    background is its running median over ``BACKGROUND_UM``; the noise is the median absolute residual (a
    robust standard deviation), so ``min_contrast`` is a signal-to-noise ratio that holds for any exposure
    or camera depth. Only the strip's bounding box of the frame is read: this runs on every frame."""
    a = np.array([np.cos(np.deg2rad(axis_deg)), np.sin(np.deg2rad(axis_deg))])
    n = np.array([-a[1], a[0]])
    tip = np.asarray(tip_px, dtype=float)
    h, w = pixels.shape
    skip = skip_um / um_per_px
    half = max(1, int(round(wall_margin * bore_radius_um / um_per_px)))
    length = int(_length_in_frame(tip + a * skip, a, w, h, margin=half + 1))
    if length * um_per_px < MIN_STRIP_UM:
        return []
    origin = tip + a * skip - n * half
    corners = origin + np.outer([0, length], a)[:, None, :] + np.outer([0, 2 * half], n)[None, :, :]
    x0, y0 = np.maximum(np.floor(corners.reshape(-1, 2).min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.ceil(corners.reshape(-1, 2).max(axis=0)).astype(int) + 2
    m = np.array([[a[0], n[0], origin[0] - x0], [a[1], n[1], origin[1] - y0]], dtype=np.float64)
    strip = cv2.warpAffine(pixels[y0:y1, x0:x1].astype(np.float32), m, (length, 2 * half + 1),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    residual = np.abs(strip - _running_median(strip, BACKGROUND_UM / um_per_px))
    noise = max(1.4826 * float(np.median(residual)), 1e-3)
    box = (max(1, int(round(HEAD_BOX_UM[0] / um_per_px))), min(2 * half + 1, max(1, int(round(HEAD_BOX_UM[1] / um_per_px)))))
    energy = cv2.blur(residual, box, borderType=cv2.BORDER_REFLECT).max(axis=0) / noise
    out: list[BoreSighting] = []
    spacing = int(round(2 * HEAD_BOX_UM[0] / um_per_px))
    for i in np.argsort(energy)[::-1]:
        if energy[i] < min_contrast:
            break
        if all(abs(i - (s.axial_um / um_per_px - skip)) >= spacing for s in out):
            at = tip + a * (i + skip)
            out.append(BoreSighting(float((i + skip) * um_per_px), float(energy[i]), (float(at[0]), float(at[1]))))
    return out


def _length_in_frame(start: np.ndarray, a: np.ndarray, w: int, h: int, margin: float) -> float:
    """How far from ``start`` along ``a`` the frame goes on, ``margin`` px inside its edges (0 outside)."""
    lo, hi = np.array([margin, margin]), np.array([w - 1 - margin, h - 1 - margin])
    if np.any(start < lo) or np.any(start > hi):
        return 0.0
    t = np.inf
    for k in range(2):
        if a[k] > 1e-9:
            t = min(t, (hi[k] - start[k]) / a[k])
        elif a[k] < -1e-9:
            t = min(t, (lo[k] - start[k]) / a[k])
    return float(t)


def _running_median(strip: np.ndarray, window_px: float) -> np.ndarray:
    """Each row's median over ``window_px`` along it, taken every fifth of a window and interpolated
    between (a full running median of that width costs a hundred times more). The ends are extended by
    point reflection (``2 f(end) - f(end - k)``), which keeps the taper's steady gradient a straight line:
    clamped, or mirrored, it would read as a disturbance half a window deep at either end."""
    rows, length = strip.shape
    win = int(min(length, max(3, round(window_px))))
    pad = win // 2
    left = 2 * strip[:, :1] - strip[:, pad:0:-1]
    right = 2 * strip[:, -1:] - strip[:, -2:-pad - 2:-1]
    padded = np.concatenate([left, strip, right], axis=1)
    step = max(1, win // 5)
    medians = np.median(np.lib.stride_tricks.sliding_window_view(padded, win, axis=1)[:, ::step], axis=-1)
    centres = np.arange(medians.shape[1]) * step + (win - 1) / 2 - pad
    cols = np.arange(length)
    return np.stack([np.interp(cols, centres, medians[r]) for r in range(rows)])
