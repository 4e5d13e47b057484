"""Label readers (COCO-video, MOTChallenge, Pascal VOC) and head detection / tracking scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perception.evaluation import (HeadBoxes, LabelError, centre_distance, load_labels, load_mot, match_frame,
                                   mot_rows, score_detections, score_heads, score_tracking)


# ----- matching --------------------------------------------------------------------------------------------
def test_centre_inside_box_is_admissible_outside_is_not():
    truth = np.array([[10, 10, 10, 20]])  # centre (15, 20), half-size (5, 10)
    pred = np.array([[12, 12, 4, 4],      # centre (14, 14): inside, 0.6 of the half-height off
                     [30, 30, 4, 4],      # centre (32, 32): outside
                     [17, 27, 2, 2]])     # centre (18, 28): inside, 0.8 of the half-height off
    d = centre_distance(truth, pred)
    assert d[0, 0] == pytest.approx(0.6)
    assert np.isnan(d[0, 1])
    assert d[0, 2] == pytest.approx(0.8)


def test_matching_is_one_to_one_and_maximises_the_matches():
    truth = np.array([[0, 0, 10, 10], [6, 0, 10, 10]])  # two overlapping boxes, centres (5, 5) and (11, 5)
    # A's centre (7, 5) lies in both boxes, nearer box 0's centre; B's (4, 5) only in box 0: A must take box 1.
    pred = np.array([[6, 4, 2, 2], [3, 4, 2, 2]])
    assert sorted(match_frame(truth, pred)) == [(0, 1), (1, 0)]
    # two predictions in one box: one hit, one false positive
    truth1 = np.array([[0, 0, 10, 10]])
    s = score_detections(HeadBoxes.from_rows([0, 0], [[4, 4, 2, 2], [1, 1, 2, 2]]),
                         HeadBoxes.from_rows([0], truth1))
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0)
    assert s["precision"] == 0.5 and s["recall"] == 1.0 and s["f1"] == pytest.approx(2 / 3)


def test_labelled_empty_frame_counts_false_positives_and_unlabelled_frames_are_not_scored():
    truth = HeadBoxes.from_rows([0], [[0, 0, 10, 10]], frames=[0, 1])
    pred = HeadBoxes.from_rows([0, 1, 2], [[0, 0, 10, 10], [50, 50, 5, 5], [50, 50, 5, 5]])
    s = score_detections(pred, truth)
    assert (s["frames"], s["tp"], s["fp"], s["fn"]) == (2, 1, 1, 0)
    only_first = score_detections(pred, truth, frames=[0])
    assert (only_first["frames"], only_first["fp"]) == (1, 0)


def test_prediction_on_a_dont_care_box_is_neither_hit_nor_false_positive():
    truth = HeadBoxes.from_rows([0, 0], [[0, 0, 10, 10], [50, 50, 10, 10]], [1, 2], ignore=[False, True])
    pred = HeadBoxes.from_rows([0, 0, 0], [[2, 2, 6, 6], [52, 52, 6, 6], [90, 90, 6, 6]], [1, 2, 3])
    d = score_detections(pred, truth)
    assert (d["tp"], d["fp"], d["fn"], d["labelled"]) == (1, 1, 0, 1)
    t = score_tracking(pred, truth)
    assert (t["false_positives"], t["misses"], t["predicted_tracks"]) == (1, 0, 2)


def _line(n: int, track: list[int]) -> HeadBoxes:
    """One head moving right over n frames; the predicted track ids per frame are ``track``."""
    boxes = [[10 + 5 * f, 20, 8, 12] for f in range(n)]
    return HeadBoxes.from_rows(range(n), boxes, track)


def test_tracking_metrics_of_an_identity_switch():
    truth = _line(4, [7, 7, 7, 7])
    perfect = score_tracking(_line(4, [1, 1, 1, 1]), truth)
    assert perfect["mota"] == 1.0 and perfect["idf1"] == 1.0 and perfect["hota"] == pytest.approx(1.0)
    switched = score_tracking(_line(4, [1, 1, 2, 2]), truth)
    assert switched["id_switches"] == 1
    assert switched["mota"] == pytest.approx(0.75)      # 1 - 1 switch / 4 labelled boxes
    assert switched["idf1"] == pytest.approx(0.5)       # 2 IDTP of 4 + 4
    assert switched["deta"] == pytest.approx(1.0)
    assert switched["assa"] == pytest.approx(0.5)       # each pair: 2 TPA / (2 + 2 FNA)
    assert switched["hota"] == pytest.approx(np.sqrt(0.5))


def test_tracking_misses_and_false_positives():
    truth = _line(4, [7, 7, 7, 7])
    pred = HeadBoxes.from_rows([0, 1, 1, 2], [[10, 20, 8, 12], [15, 20, 8, 12], [100, 100, 8, 12], [200, 0, 8, 8]],
                               [1, 1, 2, 3])
    s = score_tracking(pred, truth)
    assert (s["misses"], s["false_positives"], s["id_switches"]) == (2, 2, 0)
    assert s["mota"] == pytest.approx(1 - 4 / 4)
    det = score_detections(pred, truth)
    assert (det["tp"], det["fp"], det["fn"]) == (2, 2, 2)


def test_score_heads_without_ids_gives_detection_only():
    truth = _line(3, [1, 1, 1])
    pred = HeadBoxes.from_rows(range(3), truth.xywh)
    out = score_heads(pred, truth)
    assert out["detection"]["f1"] == 1.0
    assert out["tracking"] is None and "predictions" in out["tracking_note"]


# ----- readers ---------------------------------------------------------------------------------------------
def _coco(tmp_path: Path, anns: list[dict], n_images: int = 3) -> Path:
    doc = {"images": [{"id": i + 1, "file_name": f"{i:06d}.jpg", "frame_id": i, "video_id": 1} for i in range(n_images)],
           "annotations": anns, "categories": [{"id": 1, "name": "sperm"}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_video_reader(tmp_path):
    path = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "track_id": 4, "bbox": [1, 2, 3, 4], "category_id": 1},
        {"id": 2, "image_id": 3, "track_id": 4, "bbox": [5, 6, 3, 4], "category_id": 1},
        {"id": 3, "image_id": 3, "track_id": 9, "bbox": [50, 60, 3, 4], "category_id": 1, "iscrowd": 1}])
    b = load_labels(path)
    assert b.frames.tolist() == [0, 1, 2]  # image 2 is labelled and empty
    assert b.frame.tolist() == [0, 2, 2] and b.track_id.tolist() == [4, 4, 9]
    assert b.ignore.tolist() == [False, False, True]  # the crowd box is "don't care"
    assert b.xywh[1].tolist() == [5, 6, 3, 4]
    assert b.names[2] == "000002.jpg"


def test_coco_without_track_ids_has_no_ids(tmp_path):
    b = load_labels(_coco(tmp_path, [{"id": 1, "image_id": 1, "bbox": [1, 2, 3, 4], "category_id": 1}]))
    assert not b.has_ids and len(b.frame) == 1


def test_mot_reader_and_writer_round_trip(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("1,3,10,20,8,12,1,1,1\n2,3,12,20,8,12,1,1,1\n2,5,40,40,8,8,0,1,1\n4,3,16,20,8,12,1,1,1\n")
    b = load_labels(gt)
    assert b.frames.tolist() == [0, 1, 2, 3]  # frame 3 (1-based) is labelled, empty
    assert b.frame.tolist() == [0, 1, 1, 3]
    assert b.ignore.tolist() == [False, False, True, False]  # flagged 0: "don't care"
    assert b.track_id.tolist() == [3, 3, 5, 3]
    b = b.select([0, 1, 3])
    out = tmp_path / "pred.txt"
    out.write_text("\n".join(mot_rows(b)) + "\n")
    assert out.read_text().splitlines()[0] == "1,3,10.00,20.00,8.00,12.00,1.000,-1,-1,-1"
    back = load_mot(out, labels=False)
    assert back.frame.tolist() == b.frame.tolist() and np.allclose(back.xywh, b.xywh)


def test_mot_without_ids(tmp_path):
    p = tmp_path / "det.txt"
    p.write_text("1,-1,10,20,8,12,0.9,-1,-1,-1\n")
    b = load_mot(p, labels=False)
    assert not b.has_ids and b.conf.tolist() == [0.9]


def _voc(folder: Path, name: str, objects: list[tuple[float, float, float, float, int | None]]) -> None:
    objs = "".join(
        f"<object><name>head</name>{'' if t is None else f'<track_id>{t}</track_id>'}"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1, t in objects)
    (folder / f"{name}.xml").write_text(f"<annotation><filename>{name}.png</filename>{objs}</annotation>")


def test_voc_folder_reader(tmp_path):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    _voc(ann, "f001", [(10, 20, 18, 32, 1)])
    _voc(ann, "f000", [(0, 0, 4, 4, 2), (10, 10, 20, 20, 1)])
    _voc(ann, "f002", [])
    b = load_labels(tmp_path)
    assert b.frames.tolist() == [0, 1, 2] and b.names[0] == "f000.png"
    assert b.frame.tolist() == [0, 0, 1] and b.track_id.tolist() == [2, 1, 1]
    assert b.xywh[2].tolist() == [10, 20, 8, 12]
    _voc(ann, "f003", [(0, 0, 4, 4, None)])
    assert not load_labels(tmp_path).has_ids


@pytest.mark.parametrize("content, name, message", [
    ("{not json", "a.json", "not valid JSON"),
    ('{"annotations": []}', "b.json", "no images"),
    ("1,2,3\n", "c.txt", "expected frame,id,x,y,w,h"),
    ("1,2,a,4,5,6,1\n", "d.txt", "not a number"),
    ("0,2,3,4,5,6,1\n", "e.txt", "start at 1"),
    ("x", "f.yaml", "unknown label format"),
])
def test_bad_label_files_raise_one_line(tmp_path, content, name, message):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(LabelError, match=message) as err:
        load_labels(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)


def test_missing_path_and_empty_voc_folder(tmp_path):
    with pytest.raises(LabelError, match="no such file"):
        load_labels(tmp_path / "nothing.json")
    with pytest.raises(LabelError, match="no .xml"):
        load_labels(tmp_path)


def test_shared_real_video_labels(shared_dir):
    b = load_labels(shared_dir / "data" / "sperm_video_real" / "annotations" / "train.json")
    assert len(b.frame) == 10281 and len(np.unique(b.track_id)) == 121 and len(b.frames) == 152
    assert b.names[151] == "000151.jpg"
    s = score_heads(b, b)
    assert s["detection"]["f1"] == 1.0 and s["tracking"]["mota"] == 1.0 and s["tracking"]["hota"] == pytest.approx(1.0)
