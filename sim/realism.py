"""How a sperm head crop looks, measured the same way on real and simulated images.

Every measurement works on a grey crop roughly centred on one head, at the twin's sampling (0.1465 um
per pixel for the reference rig): real crops of another scale are resampled first
(:func:`to_twin_scale`). Intensities are relative to the crop's own background (``I / bg - 1``), so the
numbers do not depend on exposure.

Statistics (:func:`head_statistics`):
- ``mean``: mean relative intensity over the head (real near-focus heads are dark);
- ``texture_sd``: its standard deviation inside the head (anatomy, vacuoles, chromatin);
- ``halo``: mean relative intensity in a ring 0.3-0.9 um outside the head outline;
- ``axis_ratio``: length / width of the head outline (face-on heads are ovals of about 1.5);
- ``length_um``, ``width_um``: of the outline (the outline includes about half the blur);
- ``neck``: the darkest mean along rays 0.5-2.5 um out of the outline (the midpiece);
- ``tail_dark``, ``tail_bright``: the 2nd and 98th percentiles of the smoothed relative intensity
  1.5-4.5 um out of the outline, where the flagellum is: a crisp dark (or bright) line pulls them far
  from zero, a faint soft one leaves them near it.

The domain classifier (:func:`domain_features`) describes a 64x64 head crop by a histogram of oriented
gradients and uniform local binary patterns, the features that told the old twin from real heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from drivers.errors import ConfigError

#: The twin's sampling at the reference rig (5.86 um pixels through a 40x objective).
TWIN_UM_PER_PX = 5.86 / 40
#: MHSMA's sampling, estimated on the calibration part of MHSMA by matching the median outline length
#: of its heads with the twin's (heads drawn from MSOME's live-head sizes); see docs/sim.md.
MHSMA_UM_PER_PX = 0.105
#: MHSMA crops in the calibration part (the rest is held out from every choice made on the twin).
MHSMA_CALIBRATION_FRACTION = 2 / 3

STATISTICS = ("mean", "texture_sd", "halo", "axis_ratio", "length_um", "width_um", "neck", "tail_dark",
              "tail_bright")


def mhsma_split(n: int, seed: int = 2024) -> tuple[np.ndarray, np.ndarray]:
    """Indices of MHSMA crops used for calibration and those held out (fixed, seeded permutation)."""
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * MHSMA_CALIBRATION_FRACTION))
    return np.sort(order[:k]), np.sort(order[k:])


def load_mhsma(root: Path) -> np.ndarray:
    """The 128x128 MHSMA crops (uint8, N x 128 x 128); a clear error when the folder is not there."""
    path = Path(root) / "x_128_valid.npy"
    if not path.is_file():
        raise ConfigError(f"{root}: no x_128_valid.npy (MHSMA heads; see ../shared/README.md)")
    return np.load(path)


def to_twin_scale(img: np.ndarray, um_per_px: float) -> np.ndarray:
    """Resample a crop of ``um_per_px`` to the twin's sampling (area averaging when shrinking)."""
    f = um_per_px / TWIN_UM_PER_PX
    if abs(f - 1.0) < 1e-3:
        return img
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, None, fx=f, fy=f, interpolation=interp)


def centre_crop(img: np.ndarray, size: int, centre: tuple[float, float] | None = None) -> np.ndarray:
    """``size`` x ``size`` crop around ``centre`` (col, row; default the image centre), padded with the
    border median where the image is smaller."""
    h, w = img.shape
    cx, cy = centre if centre is not None else (w / 2, h / 2)
    x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
    fill = float(np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])))
    out = np.full((size, size), fill, dtype=img.dtype)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    if xa < xb and ya < yb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = img[ya:yb, xa:xb]
    return out


def relative(img: np.ndarray, border_px: int = 5) -> np.ndarray:
    """``I / bg - 1`` with ``bg`` the median of the crop's border band."""
    f = img.astype(np.float32)
    b = border_px
    band = np.concatenate([f[:b].ravel(), f[-b:].ravel(), f[b:-b, :b].ravel(), f[b:-b, -b:].ravel()])
    return f / max(float(np.median(band)), 1e-3) - 1.0


def _central_component(mask: np.ndarray, radius_px: int) -> np.ndarray | None:
    n, labels = cv2.connectedComponents(mask.astype(np.uint8))
    h, w = mask.shape
    centre = labels[h // 2 - radius_px : h // 2 + radius_px, w // 2 - radius_px : w // 2 + radius_px]
    ids, counts = np.unique(centre[centre > 0], return_counts=True)
    if not len(ids):
        return None
    return labels == ids[np.argmax(counts)]


def head_mask(rel: np.ndarray, threshold: float = 0.04) -> np.ndarray | None:
    """The head's outline: where the smoothed image is darker than ``-threshold`` (relative) at the centre
    (a head's rim is dark on either side of focus), closed over gaps of 0.6 um, holes filled (its bright
    parts), the midpiece and tail cut off by an opening 0.9 um across. None when nothing dark is there."""
    smooth = cv2.GaussianBlur(rel, (0, 0), 1.0)
    close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    strong = cv2.morphologyEx((smooth < -threshold).astype(np.uint8), cv2.MORPH_CLOSE, close)
    blob = _central_component(strong > 0, 8)
    if blob is None:
        return None
    blob = ndimage.binary_fill_holes(blob)
    r = max(1, int(round(0.45 / TWIN_UM_PER_PX)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    opened = cv2.morphologyEx(blob.astype(np.uint8), cv2.MORPH_OPEN, disk)
    return _central_component(opened > 0, 10)


def _ring(mask: np.ndarray, inner_um: float, outer_um: float) -> np.ndarray:
    dist = ndimage.distance_transform_edt(~mask) * TWIN_UM_PER_PX
    return (dist > inner_um) & (dist <= outer_um)


@dataclass(frozen=True)
class HeadStats:
    mean: float
    texture_sd: float
    halo: float
    axis_ratio: float
    length_um: float
    width_um: float
    neck: float
    tail_dark: float
    tail_bright: float

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in STATISTICS}


def head_statistics(img: np.ndarray) -> HeadStats | None:
    """The statistics of the module docstring for one crop at the twin's sampling; None when no head
    stands out at the centre."""
    rel = relative(img)
    mask = head_mask(rel)
    if mask is None or mask.sum() < 30:
        return None
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    evals = np.linalg.eigvalsh(cov)
    length, width = 4 * np.sqrt(evals[1]), 4 * np.sqrt(max(evals[0], 1e-6))
    inside = rel[mask]
    halo = rel[_ring(mask, 0.3, 0.9)]
    smooth = cv2.GaussianBlur(rel, (0, 0), 1.5)
    # the midpiece: the darkest direction out of the head, averaged along rays 0.5-2.5 um out
    near = _ring(mask, 0.5, 2.5)
    cy, cx = ys.mean(), xs.mean()
    yy, xx = np.nonzero(near)
    angle = np.arctan2(yy - cy, xx - cx)
    bins = ((angle + np.pi) / (2 * np.pi) * 24).astype(int) % 24
    sums = np.bincount(bins, weights=smooth[yy, xx], minlength=24)
    counts = np.bincount(bins, minlength=24)
    per_angle = sums[counts > 0] / counts[counts > 0]
    far = smooth[_ring(mask, 1.5, 4.5)]
    return HeadStats(
        mean=float(inside.mean()), texture_sd=float(inside.std()),
        halo=float(halo.mean()) if halo.size else 0.0,
        axis_ratio=float(length / width), length_um=float(length * TWIN_UM_PER_PX),
        width_um=float(width * TWIN_UM_PER_PX), neck=float(per_angle.min()) if per_angle.size else 0.0,
        tail_dark=float(np.percentile(far, 2)) if far.size else 0.0,
        tail_bright=float(np.percentile(far, 98)) if far.size else 0.0,
    )


def domain_features(img: np.ndarray) -> np.ndarray:
    """HOG (8x8 cells, 9 orientations) and uniform LBP (P=8, R=1) histograms of a 64x64 crop, after
    standardising its intensities (the exposure does not count)."""
    from skimage.feature import hog, local_binary_pattern

    f = img.astype(np.float32)
    f = (f - f.mean()) / (f.std() + 1e-3)
    h = hog(f, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True)
    q = np.clip(f * 32 + 128, 0, 255).astype(np.uint8)
    lbp = local_binary_pattern(q, 8, 1, method="uniform")
    hist = np.concatenate([np.histogram(lbp[r0 : r0 + 32, c0 : c0 + 32], bins=10, range=(0, 10), density=True)[0]
                           for r0 in (0, 32) for c0 in (0, 32)])
    return np.concatenate([h, hist]).astype(np.float32)


def random_framing(crops: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each crop turned by a random multiple of 90 degrees and mirrored half the time (seeded): how a set
    was framed (MHSMA's crops mostly show the tail to the left) then says nothing about where it came from."""
    rng = np.random.default_rng(seed)
    out = []
    for c in crops:
        c = np.rot90(c, int(rng.integers(4)))
        out.append(np.ascontiguousarray(c[:, ::-1] if rng.random() < 0.5 else c))
    return out


def domain_auc(real: list[np.ndarray], twin: list[np.ndarray], twin_groups: list[int], folds: int = 5,
               seed: int = 0, reframe: bool = True) -> float:
    """ROC AUC of a logistic regression on :func:`domain_features` telling real crops from twin crops,
    cross-validated with folds grouped by cell (every real crop is its own cell). 0.5: indistinguishable.
    ``reframe``: both sets get :func:`random_framing` first, so orientation does not count."""
    if reframe:
        real, twin = random_framing(real, seed + 1), random_framing(twin, seed + 2)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack([domain_features(c) for c in [*real, *twin]])
    y = np.r_[np.ones(len(real)), np.zeros(len(twin))]
    groups = np.r_[np.arange(len(real)), len(real) + np.asarray(twin_groups)]
    scores = np.zeros(len(y))
    for train, test in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))
