"""Segmentation output -> head instances and the pipette tip."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from perception.classes import HEAD, PIPETTE
from perception.runtime.estimate import HeadDetection, TipEstimate

MIN_HEAD_AREA_UM2 = 1.0  # a segmented head covers ~10 um^2; a faint one less, a speck or noise much less
MIN_PIPETTE_AREA_UM2 = 8.6  # the glass is >= 8 um wide: a smaller blob at the border is not the pipette


def heads_from_probs(probs: np.ndarray, scale: float, offset_px: tuple[float, float] = (0.0, 0.0), *,
                     um_per_px: float, min_area_um2: float = MIN_HEAD_AREA_UM2,
                     threshold: float = 0.5) -> list[HeadDetection]:
    """Connected components of the head class. ``probs`` (C, h, w) at ``scale`` of the frame, whose pixels
    are ``um_per_px``; outputs are in frame pixels (``offset_px`` is the processed region's top-left in the
    frame)."""
    head = probs[HEAD]
    mask = (head > threshold).astype(np.uint8)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    out = []
    min_area_px = min_area_um2 / um_per_px**2
    for i in range(1, n):
        area = stats[i, cv2.CC_STAT_AREA] / scale**2
        if area < min_area_px:
            continue
        x0, y0 = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
        x1, y1 = x0 + stats[i, cv2.CC_STAT_WIDTH], y0 + stats[i, cv2.CC_STAT_HEIGHT]
        # the blob's probability-weighted moments inside its box, in numpy: cv2.moments would read a box
        # one or two pixels wide as a list of points, not an image
        w = np.where(labels[y0:y1, x0:x1] == i, head[y0:y1, x0:x1], np.float32(0.0))
        wx, wy = w.sum(axis=0, dtype=np.float64), w.sum(axis=1, dtype=np.float64)
        m00 = float(wx.sum())
        xs, ys = np.arange(w.shape[1]), np.arange(w.shape[0])
        mean_x, mean_y = float(wx @ xs) / m00, float(wy @ ys) / m00
        dx, dy = xs - mean_x, ys - mean_y
        mu11 = float(dy @ (w @ dx))
        cov = np.array([[wx @ dx**2, mu11], [mu11, wy @ dy**2]]) / m00
        cx, cy = x0 + mean_x, y0 + mean_y
        evals, evecs = np.linalg.eigh(cov)
        angle = float(np.degrees(np.arctan2(evecs[1, -1], evecs[0, -1])))
        out.append(HeadDetection(
            centroid_px=((cx + 0.5) / scale - 0.5 + offset_px[0], (cy + 0.5) / scale - 0.5 + offset_px[1]),
            orientation_deg=angle, area_px=float(area), confidence=m00 / float(stats[i, cv2.CC_STAT_AREA]),
            elongation=float(np.sqrt(evals[-1] / max(evals[0], 1e-6)))))
    return out


#: a head's shape is measured on the frame within this radius of its centre: a head is 3.7-4.7 um long
#: (WHO), so the window holds it and its blur; the background level comes from a window this wide
SHAPE_RADIUS_UM = 2.8
BACKGROUND_HALF_UM = 5.0


def elongation_in_frame(pixels: np.ndarray, centroid_px: tuple[float, float], um_per_px: float) -> float:
    """Long / short axis of the dark matter within ``SHAPE_RADIUS_UM`` of a head's centre, from the frame's
    own pixels (second moments of how far each pixel lies below the local background).

    The segmentation works at 0.5 um/px, where a 4.5 x 3 um head is 9 x 6 pixels and its blob comes out
    nearly round (twin heads: median 1.23, sphere-shaped debris 1.05), so a shape test there barely tells
    a head from a round particle. On the frame at 0.1465 um/px the same heads measure 1.21-1.63 (10th-90th
    percentile) and the spheres 1.00-1.01; on the real development video at 0.4 um/px, labelled heads
    1.20-1.60. Out of focus a head reads rounder (median 1.04 at 2 um below focus) while a sphere stays
    at 1.00-1.02, so the tracker asks of this measure only that a head not be round (TrackerConfig;
    benchmarks/heads_real.py counts the spheres tracked). NaN where nothing around is darker than the
    background."""
    r = max(1, int(np.ceil(SHAPE_RADIUS_UM / um_per_px)))
    half = max(r + 1, int(np.ceil(BACKGROUND_HALF_UM / um_per_px)))
    h, w = pixels.shape
    x, y = int(round(centroid_px[0])), int(round(centroid_px[1]))
    x0, x1, y0, y1 = max(x - half, 0), min(x + half + 1, w), max(y - half, 0), min(y + half + 1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return float("nan")
    around = pixels[y0:y1, x0:x1].astype(np.float32)
    weight = np.float32(np.median(around[::2, ::2])) - around  # darker than the local background
    np.maximum(weight, 0.0, out=weight)
    weight *= _disc(r, half)[y0 - y + half:y1 - y + half, x0 - x + half:x1 - x + half]
    m = cv2.moments(weight)
    if m["m00"] <= 0.0:
        return float("nan")
    a, b, c = m["mu20"] / m["m00"], m["mu11"] / m["m00"], m["mu02"] / m["m00"]
    spread = np.sqrt(((a - c) / 2) ** 2 + b**2)
    return float(np.sqrt(((a + c) / 2 + spread) / max((a + c) / 2 - spread, 1e-9)))


@functools.lru_cache(maxsize=16)
def _disc(r: int, half: int) -> np.ndarray:
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    return (xx**2 + yy**2 <= r * r).astype(np.float32)


def tip_from_mask(mask: np.ndarray, min_area_px: float = 400.0) -> tuple[tuple[float, float], np.ndarray] | None:
    """The pipette enters from the image border: take the largest blob touching a border; the tip is where
    the blob's cross-section last holds half the glass's width, on the glass's centre line.

    A head or tail touching the opening merges into the blob: the blob's farthest points would put the
    tip on that cell, up to 5 um off in the twin (error std 7 px along the axis and 10 px across it while
    cells pass the opening). A cell is much narrower than the glass, so the width test
    ends the glass where the glass ends, and the centre line of the glass behind the tip (the median of
    each cross-section's midpoint) is not pulled toward a cell beside it.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    h, w = mask.shape
    touching = [i for i in range(1, n) if stats[i, cv2.CC_STAT_LEFT] == 0 or stats[i, cv2.CC_STAT_TOP] == 0
                or stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] == w
                or stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] == h]
    if not touching:
        return None
    i = max(touching, key=lambda k: stats[k, cv2.CC_STAT_AREA])
    if stats[i, cv2.CC_STAT_AREA] < min_area_px:
        return None
    ys, xs = np.nonzero(labels == i)
    touches = {"left": np.sum(xs == 0), "right": np.sum(xs == w - 1), "top": np.sum(ys == 0), "bottom": np.sum(ys == h - 1)}
    side = max(touches, key=touches.get)
    along = {"left": xs, "right": w - 1 - xs, "top": ys, "bottom": h - 1 - ys}[side]  # from the border
    across = ys if side in ("left", "right") else xs
    lo = np.full(along.max() + 1, np.iinfo(np.intp).max)
    hi = np.full(along.max() + 1, -1)
    np.minimum.at(lo, along, across)
    np.maximum.at(hi, along, across)
    width = np.bincount(along)  # pixels of each cross-section (a cell beside the glass adds only its own)
    front = width[along.max() // 2 :]  # the front half of the glass in view: its width, cells excepted
    glass_w = float(np.median(front[front > 0]))
    end = int(np.nonzero(width >= 0.5 * glass_w)[0].max())
    behind = np.arange(max(0, end - int(glass_w)), end + 1)
    behind = behind[width[behind] > 0]
    centre = float(np.median((lo[behind] + hi[behind]) / 2.0))
    tip = (float(end), centre) if side == "left" else (float(w - 1 - end), centre) if side == "right" \
        else (centre, float(end)) if side == "top" else (centre, float(h - 1 - end))
    return tip, np.stack([ys, xs])


def tip_from_probs(probs: np.ndarray, scale: float, offset_px: tuple[float, float] = (0.0, 0.0), *,
                   um_per_px: float, min_area_um2: float = MIN_PIPETTE_AREA_UM2) -> TipEstimate | None:
    """Pipette tip from the segmentation's pipette class, in frame pixels (of ``um_per_px``)."""
    found = tip_from_mask(probs[PIPETTE] > 0.5, min_area_um2 / um_per_px**2 * scale**2)
    if found is None:
        return None
    (tx, ty), (ys, xs) = found
    conf = float(probs[PIPETTE][ys, xs].mean())
    return TipEstimate(((tx + 0.5) / scale - 0.5 + offset_px[0], (ty + 0.5) / scale - 0.5 + offset_px[1]), conf)
