"""Head detection scores of a segmentation network during training: instances on the twin's tiles, and
heads in labelled real frames (a detection counts when its centre lies in a head box, one to one)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from perception.runtime.detect import heads_from_probs
from perception.runtime.seg_input import network_input

IGNORE = 255


def match_in_regions(points: np.ndarray, inside: np.ndarray, centres: np.ndarray) -> int:
    """One-to-one matches of ``points`` (N, 2) to regions: ``inside`` (N, M) says which point lies in which
    region; among those, the nearest to each region's centre (M, 2) wins. Returns the number matched."""
    if len(points) == 0 or inside.shape[1] == 0:
        return 0
    dist = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2)
    cost = np.where(inside, dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return int(np.sum(cost[rows, cols] < 1e6))


def centres_in_boxes(points: np.ndarray, boxes: np.ndarray) -> tuple[int, int, int]:
    """(TP, FP, FN) of detection centres against boxes ``(M, 4)`` x, y, w, h."""
    points = np.asarray(points, float).reshape(-1, 2)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    x, y = points[:, :1], points[:, 1:]
    inside = (x >= boxes[None, :, 0]) & (x <= boxes[None, :, 0] + boxes[None, :, 2]) \
        & (y >= boxes[None, :, 1]) & (y <= boxes[None, :, 1] + boxes[None, :, 3])
    tp = match_in_regions(points, inside, boxes[:, :2] + boxes[:, 2:] / 2)
    return tp, len(points) - tp, len(boxes) - tp


def head_f1_on_tiles(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(TP, FP, FN) summed over a batch: predicted head blobs against the labelled head instances (a blob
    counts when its centre is within one pixel of an instance); blobs centred on ignored pixels count
    neither way."""
    total = np.zeros(3)
    for p, y in zip(probs, labels):
        heads = heads_from_probs(p, 1.0, um_per_px=1.0, min_area_um2=4.0)  # 4 network pixels
        pts = np.array([d.centroid_px for d in heads], float).reshape(-1, 2)
        n, comp = cv2.connectedComponents(cv2.dilate((y == 1).astype(np.uint8), np.ones((3, 3), np.uint8)))
        ij = np.clip(np.rint(pts).astype(int), 0, [y.shape[1] - 1, y.shape[0] - 1])
        at = comp[ij[:, 1], ij[:, 0]] if len(pts) else np.zeros(0, int)
        ignored = (y[ij[:, 1], ij[:, 0]] == IGNORE) & (at == 0) if len(pts) else np.zeros(0, bool)
        pts, at = pts[~ignored], at[~ignored]
        inside = at[:, None] == np.arange(1, n)[None, :]
        centres = np.array([np.argwhere(comp == k).mean(0)[::-1] for k in range(1, n)]).reshape(-1, 2)
        tp = match_in_regions(pts, inside, centres)
        total += (tp, len(pts) - tp, n - 1 - tp)
    return total


def detect_heads(model: torch.nn.Module, image: np.ndarray, frame_um_per_px: float, net_um_per_px: float,
                 device: torch.device | str = "cpu", threshold: float = 0.5):
    """Heads in a whole frame with a torch model, through the runtime's input path and blob extraction."""
    x, scale = network_input(image, frame_um_per_px, net_um_per_px)
    h, w = int(round(image.shape[0] * scale)), int(round(image.shape[1] * scale))
    probs = model(torch.from_numpy(x).to(device)).float().softmax(1)[0, :, :h, :w].cpu().numpy()
    return heads_from_probs(probs, scale, um_per_px=frame_um_per_px, threshold=threshold)


@torch.no_grad()
def real_head_f1(model: torch.nn.Module, frames: list, meta: dict, device: torch.device | str = "cpu") -> dict:
    """Precision, recall and F1 over labelled real frames at the network's nominal pixel size."""
    model.eval()
    tp = fp = fn = 0
    for f in frames:
        heads = detect_heads(model, f.image, meta["real_um_per_px"], meta["input_pixel_um"], device)
        a, b, c = centres_in_boxes(np.array([d.centroid_px for d in heads]), f.boxes[:, 1:])
        tp, fp, fn = tp + a, fp + b, fn + c
    return {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "f1": 2 * tp / max(2 * tp + fp + fn, 1)}
