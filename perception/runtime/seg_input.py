"""The segmentation network's input: any frame region, resampled to the network's working pixel size and
flat-fielded, padded to a multiple of 32 (UNeXt halves the image five times).

Why flat-field: rigs differ in lamp power, exposure, gain, vignetting and uneven (Koehler-misaligned)
illumination. Standardising by the frame's global mean and std made the network key on absolute brightness:
on a real video with a darker corner, recall there fell to 7%. Here every pixel is expressed as its relative
contrast against the local background, ``I / B - 1``, with ``B`` a median over ~20 um (wider than any cell, so
heads, debris and dense fields do not lift it). That is invariant to gain and to any illumination that
varies slowly across the field, whatever the frame's mean brightness; it is 0 on empty background.

Padding mirrors the image. Zero padding (empty background) ended the pipette's glass at the padding, where it
leaves the frame: the network took that end for an opening and its pipette class faded over the last ~5 um
before the border, so the blob no longer touched the border and the tip was lost whenever the glass ran
out of the region at its right or bottom edge (``tests/perception/test_seg_input.py``).

Training (``perception/training/datasets.py``) and the runtime call the same functions, so the network
sees the same input distribution in both.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Name stored in the weights' metadata; a model trained with another normalisation is refused.
NORMALISATION = "flatfield-20um"
BACKGROUND_UM = 20.0  # median window: wider than a head (4.4 um) and most debris, narrower than vignetting
MULTIPLE = 32


def resample(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize by ``scale`` (area averaging when shrinking, bilinear when enlarging); at least 8 px a side.

    The dataset generator resamples the twin's camera images with the same calls (cv2 INTER_AREA /
    INTER_LINEAR), so the network is trained on what the runtime gives it."""
    h, w = img.shape[:2]
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    if size == (w, h):
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def flat_field(img: np.ndarray, um_per_px: float) -> np.ndarray:
    """Relative contrast ``I / B - 1`` against a local median background ``B`` (float32).

    ``B``: the image shrunk by area averaging to cells of ~``BACKGROUND_UM / 5``, median-filtered 5x5, and
    enlarged bilinearly: about 1 ms on a 512x384 image (a full-size median of that width costs 40 ms).
    """
    f = img.astype(np.float32)
    h, w = f.shape
    cell_px = max(1, int(round(BACKGROUND_UM / 5 / um_per_px)))
    sw, sh = max(5, w // cell_px), max(5, h // cell_px)
    small = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
    bg = cv2.medianBlur(small, 5)
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
    floor = max(float(np.percentile(bg, 50)) * 0.05, 1e-3)  # a black border or frame must not divide by ~0
    np.maximum(bg, floor, out=bg)
    out = f / bg
    out -= 1.0
    np.clip(out, -4.0, 4.0, out=out)  # saturated glints and glass edges: bounded like everything else
    return out


def pad_to_multiple(x: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """Pad at the bottom and right to a multiple of 32 with the image's mirror: what crosses the border
    (the pipette always does) goes on across it."""
    h, w = x.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)


def network_input(region: np.ndarray, region_um_per_px: float, net_um_per_px: float) -> tuple[np.ndarray, float]:
    """A region of a frame -> ``(x (1, 1, H, W) float32, scale)``: ``scale`` maps region pixels to network
    pixels; the network's output rows/columns past ``region * scale`` are padding (crop them off)."""
    if region.dtype != np.uint8 and region.dtype != np.float32:
        region = region.astype(np.float32)
    scale = region_um_per_px / net_um_per_px
    small = resample(region, scale)
    scale = small.shape[1] / region.shape[1]
    x = pad_to_multiple(flat_field(small, net_um_per_px))
    return x[None, None], scale
