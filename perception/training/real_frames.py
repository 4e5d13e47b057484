"""Real labelled video frames as segmentation training data, split by time.

The labels are head boxes with track ids (COCO-video JSON, as in ``shared/data/sperm_video_real``), not
masks, and not every head in view is labelled. A frame becomes a label image at its own resolution:
- inside a box, the dark blob nearest the box centre (the head; the box also holds a piece of tail and
  blur) is ``head``, the rest of the box ignored;
- outside the boxes, dark blobs shaped like an unlabelled head (head-sized and elongated) are ignored,
  everything else is ``NOT_HEAD``: background or flagellum (the labels say nothing about tails), which
  includes the round debris and specks the network must learn to reject.

Frames come in runs of near-identical copies and successive frames are correlated: split by TIME, never at
random; the validation part is a contiguous stretch at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drivers.errors import ConfigError
from perception.classes import HEAD, NOT_HEAD
from perception.classes import SEG_IGNORE as IGNORE
from perception.runtime.seg_input import flat_field



@dataclass
class LabelledFrame:
    index: int  # frame number in the video (0-based)
    image: np.ndarray  # uint8 grey
    boxes: np.ndarray  # (N, 5): track id, x, y, w, h in pixels


def load_labelled_video(labels: Path, images: Path | None = None) -> list[LabelledFrame]:
    """Frames in order with their head boxes (any label format ``perception.evaluation`` reads; images in
    ``images``, by default the COCO layout's ``../train`` beside ``annotations/``); black frames (no content)
    dropped."""
    from perception.evaluation import load_labels

    labels = Path(labels)
    if labels.is_dir():  # the dataset folder: annotations/train.json and train/
        labels = labels / "annotations" / "train.json"
    folder = Path(images) if images is not None else labels.parent.parent / "train"
    truth = load_labels(labels)
    frames = []
    for index in truth.frames:
        path = folder / Path(truth.names.get(int(index), f"{int(index):06d}.jpg")).name
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ConfigError(f"{path}: cannot read image")
        if img.max() < 10:
            continue
        rows = truth.in_frame(int(index))
        rows = rows[~truth.ignore[rows]]
        ids = truth.track_id[rows] if truth.has_ids else np.full(len(rows), -1)
        frames.append(LabelledFrame(int(index), img, np.column_stack([ids, truth.xywh[rows]]).reshape(-1, 5)))
    return frames


def split_by_time(frames: list[LabelledFrame], val_from: int) -> tuple[list[LabelledFrame], list[LabelledFrame]]:
    """(train, validation): frames before ``val_from`` and from it on."""
    return [f for f in frames if f.index < val_from], [f for f in frames if f.index >= val_from]


def label_image(frame: LabelledFrame, um_per_px: float, dark: float = -0.2) -> np.ndarray:
    """Label image (uint8, frame size) with HEAD, NOT_HEAD and IGNORE (see the module docstring)."""
    contrast = flat_field(frame.image, um_per_px)
    blobs = (contrast < dark).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
    h, w = frame.image.shape
    label = np.full((h, w), NOT_HEAD, np.uint8)
    in_box = np.zeros((h, w), bool)
    heads = []
    for _, x, y, bw, bh in frame.boxes:
        x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
        x1, y1 = min(int(np.ceil(x + bw)), w), min(int(np.ceil(y + bh)), h)
        if x1 <= x0 or y1 <= y0:
            continue
        in_box[y0:y1, x0:x1] = True
        sub = comp[y0:y1, x0:x1]
        ids = [i for i in np.unique(sub) if i > 0]
        cx, cy = x + bw / 2 - x0, y + bh / 2 - y0
        best = None
        if ids:
            yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0]
            dist = {i: np.min(np.hypot(xx[sub == i] - cx, yy[sub == i] - cy)) for i in ids}
            best = min(dist, key=dist.get)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        if best is not None and dist[best] < 0.35 * max(bw, bh):
            # the head's dark core: the midpiece and blur at the blob's edge are fainter
            blob = sub == best
            mask[blob & (contrast[y0:y1, x0:x1] < 0.5 * contrast[y0:y1, x0:x1][blob].min())] = 1
        else:  # a faint (defocused) head: an ellipse of head size at the box centre
            axes = (max(1, int(round(min(bw, bh) * 0.3))), max(1, int(round(min(bw, bh) * 0.3))))
            cv2.ellipse(mask, (int(round(cx)), int(round(cy))), axes, 0, 0, 360, 1, -1)
        heads.append((x0, y0, x1, y1, mask))
    label[in_box] = IGNORE
    # unlabelled blobs shaped like heads: ignored, neither head nor background
    um2 = um_per_px**2
    for i in range(1, n):
        x0, y0, bw, bh, area = stats[i]
        if in_box[comp == i].any():
            continue
        if not 6.0 <= area * um2 <= 30.0:
            continue
        ys, xs = np.nonzero(comp[y0 : y0 + bh, x0 : x0 + bw] == i)
        cov = np.cov(np.stack([xs, ys]).astype(float)) if len(xs) > 2 else np.eye(2)
        ev = np.linalg.eigvalsh(cov)
        if np.sqrt(ev[-1] / max(ev[0], 1e-6)) >= 1.3:
            label[y0 : y0 + bh, x0 : x0 + bw][comp[y0 : y0 + bh, x0 : x0 + bw] == i] = IGNORE
    for x0, y0, x1, y1, mask in heads:
        label[y0:y1, x0:x1][mask > 0] = HEAD
    return label
