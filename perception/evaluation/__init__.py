"""Scoring perception against labelled real video: label readers (COCO-video, MOTChallenge, Pascal VOC)
and head detection / tracking metrics.

    from perception.evaluation import load_labels, score_heads
    truth = load_labels("annotations/train.json")
    pred = HeadBoxes.from_rows(frames, boxes_xywh, track_ids)   # or load_mot("pred.txt", labels=False)
    metrics = score_heads(pred, truth, frames=range(122, 152))
"""

from perception.evaluation.heads import (centre_distance, match_frame, score_detections, score_heads,
                                         score_tracking)
from perception.evaluation.labels import (HeadBoxes, LabelError, detect_format, load_coco_video, load_labels,
                                          load_mot, load_voc, mot_row, mot_rows)

__all__ = ["HeadBoxes", "LabelError", "centre_distance", "detect_format", "load_coco_video", "load_labels",
           "load_mot", "load_voc", "match_frame", "mot_row", "mot_rows", "score_detections", "score_heads",
           "score_tracking"]
