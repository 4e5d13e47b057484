"""Score predicted head boxes (and tracks) against labelled ones.

Detection: a prediction counts when the centre of its box lies inside a labelled head box; matching is
one-to-one per frame (Hungarian, scipy), nearest centres first among the admissible pairs; precision,
recall and F1 follow. Boxes of any size are judged alike this way, so a detector that finds heads but
draws its boxes differently from the annotators (a segmented blob vs a hand-drawn box) is not penalised.

Tracking, where both sides carry track ids, with maintained libraries and the same admissible pairs:
MOTA, IDF1 and identity switches from py-motmetrics (CLEAR-MOT and identity metrics), HOTA, DetA and AssA
from motrics (a port of TrackEval's HOTA, bit-exact with it) on box IoU, as MOTChallenge and VISEM-Tracking
score HOTA. Nothing here recomputes a metric by hand.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.evaluation.labels import HeadBoxes

MATCH_RULE = "centre of the predicted box inside the labelled box, one-to-one (Hungarian on centre distance)"
HOTA_SIMILARITY = "box IoU (TrackEval's HOTA, via motrics)"


def centre_distance(truth_xywh: np.ndarray, pred_xywh: np.ndarray) -> np.ndarray:
    """(G, P): how far each predicted box's centre lies from each labelled box's centre, in units of the
    labelled box's half-size along the worse axis (<= 1: inside the box); NaN where it lies outside."""
    t = np.asarray(truth_xywh, dtype=float).reshape(-1, 4)
    p = np.asarray(pred_xywh, dtype=float).reshape(-1, 4)
    half = np.maximum(t[:, None, 2:] / 2, 1e-9)
    off = np.abs((p[None, :, :2] + p[None, :, 2:] / 2) - (t[:, None, :2] + t[:, None, 2:] / 2)) / half
    d = off.max(axis=2)
    return np.where(d <= 1.0, d, np.nan)


def match_frame(truth_xywh: np.ndarray, pred_xywh: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (truth row, prediction row) pairs of one frame: as many admissible pairs as possible, and
    among those the nearest centres."""
    d = centre_distance(truth_xywh, pred_xywh)
    if not d.size or np.isnan(d).all():
        return []
    cost = np.where(np.isnan(d), 1e6, d)  # an inadmissible pair costs more than any set of admissible ones
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if not np.isnan(d[r, c])]


def frame_rows(pred: HeadBoxes, truth: HeadBoxes, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``truth`` and ``pred`` to score in ``frame``: labelled boxes not marked "don't care", and the
    predictions less those that match a "don't care" box (matched against all labelled boxes at once, as
    TrackEval removes detections matched to distractors)."""
    ti, pi = truth.in_frame(frame), pred.in_frame(frame)
    ign = truth.ignore[ti]
    if not ign.any():
        return ti, pi
    on_ignored = {c for r, c in match_frame(truth.xywh[ti], pred.xywh[pi]) if ign[r]}
    return ti[~ign], np.array([p for k, p in enumerate(pi) if k not in on_ignored], dtype=np.int64)


def scored_frames(truth: HeadBoxes, frames: Iterable[int] | None = None) -> np.ndarray:
    """The labelled frames, limited to ``frames`` when given."""
    return truth.frames if frames is None else np.intersect1d(truth.frames, np.asarray(list(frames), dtype=np.int64))


def score_detections(pred: HeadBoxes, truth: HeadBoxes, frames: Iterable[int] | None = None) -> dict[str, Any]:
    """Precision, recall and F1 over the labelled frames (or those of ``frames`` that are labelled)."""
    tp = fp = fn = 0
    which = scored_frames(truth, frames)
    for f in which:
        ti, pi = frame_rows(pred, truth, f)
        t, p = truth.xywh[ti], pred.xywh[pi]
        m = len(match_frame(t, p))
        tp, fp, fn = tp + m, fp + len(p) - m, fn + len(t) - m
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"frames": int(len(which)), "labelled": tp + fn, "predicted": tp + fp, "tp": tp, "fp": fp, "fn": fn,
            "precision": precision, "recall": recall, "f1": f1, "match": MATCH_RULE}


def score_tracking(pred: HeadBoxes, truth: HeadBoxes, frames: Iterable[int] | None = None) -> dict[str, Any]:
    """MOTA, IDF1, identity switches (py-motmetrics) and HOTA, DetA, AssA (motrics); both sides need ids."""
    import motmetrics as mm
    import motrics

    if not (pred.has_ids and truth.has_ids):
        raise ValueError("tracking metrics need track ids on both the predictions and the labels")
    which = scored_frames(truth, frames)
    acc = mm.MOTAccumulator(auto_id=False)
    gt_ids, gt_boxes, pr_ids, pr_boxes = [], [], [], []
    for f in which:
        ti, pi = frame_rows(pred, truth, f)
        acc.update(truth.track_id[ti].tolist(), pred.track_id[pi].tolist(),
                   centre_distance(truth.xywh[ti], pred.xywh[pi]), frameid=int(f))
        gt_ids.append(truth.track_id[ti].tolist())
        gt_boxes.append(np.ascontiguousarray(truth.xywh[ti], dtype=np.float64))
        pr_ids.append(pred.track_id[pi].tolist())
        pr_boxes.append(np.ascontiguousarray(pred.xywh[pi], dtype=np.float64))
    names = ["mota", "motp", "idf1", "idp", "idr", "num_switches", "num_false_positives", "num_misses",
             "num_objects", "num_unique_objects", "mostly_tracked", "mostly_lost", "num_fragmentations"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="video")
    row = summary.iloc[0].to_dict()
    count = lambda k: int(row[k])  # noqa: E731  (pandas hands counts over as floats)
    hota = motrics.compute_hota(gt_ids, gt_boxes, pr_ids, pr_boxes, box_format="xywh")
    return {
        "frames": int(len(which)), "mota": float(row["mota"]), "idf1": float(row["idf1"]),
        "idp": float(row["idp"]), "idr": float(row["idr"]), "id_switches": count("num_switches"),
        "false_positives": count("num_false_positives"), "misses": count("num_misses"),
        "labelled": count("num_objects"), "labelled_tracks": count("num_unique_objects"),
        "predicted_tracks": int(len({i for ids in pr_ids for i in ids})),
        "mostly_tracked": count("mostly_tracked"), "mostly_lost": count("mostly_lost"),
        "fragmentations": count("num_fragmentations"),
        "hota": float(hota.hota), "deta": float(hota.deta), "assa": float(hota.assa), "loca": float(hota.loca),
        "match": MATCH_RULE, "hota_similarity": HOTA_SIMILARITY,
    }


def score_heads(pred: HeadBoxes, truth: HeadBoxes, frames: Iterable[int] | None = None) -> dict[str, Any]:
    """Everything that applies: detection always; tracking (``tracking`` key) when both sides carry ids,
    else ``tracking`` is None and ``tracking_note`` says why."""
    frames = None if frames is None else list(frames)
    out: dict[str, Any] = {"detection": score_detections(pred, truth, frames), "tracking": None}
    if pred.has_ids and truth.has_ids:
        out["tracking"] = score_tracking(pred, truth, frames)
    else:
        out["tracking_note"] = "no track ids in the " + ("labels" if not truth.has_ids else "predictions")
    return out

