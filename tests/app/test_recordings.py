"""``micromanip track`` and ``micromanip eval heads`` on a short twin clip written as a folder of images, a
multi-page TIFF and an AVI at an odd size (697 x 527), with its ground truth in the three label formats;
and on the shared real video when it is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from app.recordings import eval_heads, track_to_mot
from perception.evaluation import load_labels, load_mot

ROOT = Path(__file__).resolve().parents[2]
ROI = (600, 380, 697, 527)
PIXEL_UM = 5.86 / 40
BOX_PX = 24  # scoring box about each simulated head: a detection counts within 12 px along each axis


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, Path]:
    """24 twin frames (697 x 527) as PNG folder, TIFF and AVI, with truth as MOT, COCO-video and VOC."""
    from app.config import load_rig_config
    from app.rig import build_rig
    from app.trials import trial_config
    from drivers.interfaces import Roi

    out = tmp_path_factory.mktemp("clip")
    config, settings = trial_config(load_rig_config(ROOT / "configs" / "sim.yaml"), "motile", "lockstep")
    frames, rows = [], []
    with build_rig(config, seed=3) as rig:
        rig.camera.set_roi(Roi(*ROI))
        rig.focus.move_to_um(settings.focus_start_um).wait(5)
        for i in range(24):
            f = rig.frames.snap()
            frames.append(f.pixels)
            for t in f.truth.sperm:
                x, y = t.head_px
                if 0 <= x < ROI[2] and 0 <= y < ROI[3]:
                    scored = abs(t.depth_um) < 2.0 and not t.captured
                    rows.append((i, t.id, x - BOX_PX / 2, y - BOX_PX / 2, scored))
    folder = out / "frames"
    folder.mkdir()
    for i, px in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), px)
    tifffile.imwrite(out / "clip.tif", np.stack(frames), photometric="minisblack")
    writer = cv2.VideoWriter(str(out / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 40.0, (ROI[2], ROI[3]), isColor=True)
    for px in frames:
        writer.write(cv2.cvtColor(px, cv2.COLOR_GRAY2BGR))
    writer.release()
    # the same truth in the three label formats ("don't care" heads: MOT flag 0, COCO crowd; VOC omits them)
    (out / "gt.txt").write_text("".join(f"{i + 1},{tid},{x:.2f},{y:.2f},{BOX_PX},{BOX_PX},{int(s)},1,1\n"
                                        for i, tid, x, y, s in rows))
    images = [{"id": i + 1, "file_name": f"frame_{i:03d}.png", "frame_id": i} for i in range(len(frames))]
    anns = [{"id": k + 1, "image_id": i + 1, "track_id": tid, "bbox": [x, y, BOX_PX, BOX_PX], "category_id": 1,
             "iscrowd": int(not s)} for k, (i, tid, x, y, s) in enumerate(rows)]
    (out / "coco.json").write_text(json.dumps({"images": images, "annotations": anns}))
    voc = out / "voc"
    voc.mkdir()
    for i in range(len(frames)):
        objs = "".join(f"<object><track_id>{tid}</track_id><bndbox><xmin>{x}</xmin><ymin>{y}</ymin>"
                       f"<xmax>{x + BOX_PX}</xmax><ymax>{y + BOX_PX}</ymax></bndbox></object>"
                       for j, tid, x, y, s in rows if j == i and s)
        (voc / f"frame_{i:03d}.xml").write_text(f"<annotation><filename>frame_{i:03d}.png</filename>{objs}</annotation>")
    return {"folder": folder, "tiff": out / "clip.tif", "avi": out / "clip.avi", "mot": out / "gt.txt",
            "coco": out / "coco.json", "voc": voc, "dir": out}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_track_cli_writes_mot_rows_in_the_inputs_pixels(clip, tmp_path):
    out = tmp_path / "pred.txt"
    proc = run_cli("track", str(clip["folder"]), "--um-per-px", str(PIXEL_UM), "--fps", "40", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote" in proc.stdout and "frame" in proc.stderr  # the summary line; tqdm's bar on stderr
    lines = out.read_text().splitlines()
    assert lines
    for line in lines:
        f = line.split(",")
        assert len(f) == 10 and f[7:] == ["-1", "-1", "-1"]
        frame, tid = int(f[0]), int(f[1])
        x, y, w, h, conf = map(float, f[2:7])
        assert 1 <= frame <= 24 and tid >= 1 and 0 < conf <= 1
        assert 2 < w < 80 and 2 < h < 80  # head-sized boxes (a head is ~30 x 19 px at 0.1465 um/px)
        assert -w < x < ROI[2] and -h < y < ROI[3]
    pred = load_mot(out, labels=False)
    # a track is confirmed after 3 sightings, then reported from its first (a recording is perceived offline)
    assert pred.has_ids and pred.frame.min() == 0
    first_row = {}
    for line in lines:
        frame, tid = map(int, line.split(",")[:2])
        first_row.setdefault(tid, frame)
    assert all(first_row[t] == pred.frame[pred.track_id == t].min() + 1 for t in first_row)


def test_a_track_is_reported_from_its_first_sighting_with_the_detections_of_those_frames(clip):
    from drivers.recording import open_recording
    from perception.runtime.video_tracking import track_recording

    with open_recording(clip["folder"]) as rec:
        dets, tracks = track_recording(rec, PIXEL_UM, 40.0)
    assert tracks.has_ids and len(tracks.frame)
    for f, box in zip(tracks.frame, tracks.xywh):  # earlier sightings too are that frame's own detections
        assert np.abs(dets.xywh[dets.frame == f] - box).max(axis=1).min() < 1e-9
    for t in set(tracks.track_id.tolist()):
        frames = np.sort(tracks.frame[tracks.track_id == t])
        assert len(frames) >= 3 and len(set(frames.tolist())) == len(frames)  # confirmed after 3; one row a frame


def test_a_video_that_repeats_each_exposure_gives_each_copy_the_exposures_result(clip, tmp_path):
    """Each frame three times at three times the rate (as frame-rate conversion leaves a video): every copy
    gets the result of the exposure it repeats, tracks and ids included, and the tracker counts each
    exposure once (a track still needs three exposures to be confirmed)."""
    from drivers.recording import open_recording
    from perception.runtime.video_tracking import track_recording

    frames = tifffile.imread(clip["tiff"])[:12]
    tifffile.imwrite(tmp_path / "x3.tif", np.repeat(frames, 3, axis=0), photometric="minisblack")
    with open_recording(clip["tiff"]) as rec:
        dets, tracks = track_recording(rec, PIXEL_UM, 40.0, stop=12)
    with open_recording(tmp_path / "x3.tif") as rec:
        dets3, tracks3 = track_recording(rec, PIXEL_UM, 120.0)
    assert len(tracks.frame) and len(tracks3.frame) == 3 * len(tracks.frame)
    for f3 in range(36):
        f = f3 // 3
        assert np.array_equal(dets3.xywh[dets3.frame == f3], dets.xywh[dets.frame == f])
        rows, rows3 = tracks.frame == f, tracks3.frame == f3
        assert sorted(zip(tracks3.track_id[rows3].tolist(), tracks3.xywh[rows3].round(6).tolist())) == \
            sorted(zip(tracks.track_id[rows].tolist(), tracks.xywh[rows].round(6).tolist()))


def test_tiff_and_folder_give_the_same_tracks_and_avi_runs(clip, tmp_path):
    a = track_to_mot(clip["folder"], PIXEL_UM, 40.0, tmp_path / "a.txt", progress=False)
    track_to_mot(clip["tiff"], PIXEL_UM, 40.0, tmp_path / "b.txt", progress=False)
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text() and a["rows"] > 0
    c = track_to_mot(clip["avi"], PIXEL_UM, None, tmp_path / "c.txt", frames="4:20", progress=False)  # the video's rate
    assert c["frames"] == 16 and c["rows"] > 0
    frames = {int(line.split(",")[0]) for line in (tmp_path / "c.txt").read_text().splitlines()}
    assert min(frames) >= 5 and max(frames) <= 20  # 1-based rows of the input's frames 4..19


def test_eval_heads_scores_the_twin_clip_alike_in_every_label_format(clip, tmp_path):
    reports = {fmt: eval_heads(clip[fmt], clip["folder"], None, PIXEL_UM, 40.0, None, progress=False)
               for fmt in ("mot", "coco", "voc")}
    r = reports["mot"]
    det, trk = r["detections"], r["tracks"]["tracking"]
    assert r["network_scale"] == pytest.approx(PIXEL_UM / r["network_pixel_um"]) and det["frames"] == 24
    # the shipped UNeXt on the twin's own images
    assert det["recall"] > 0.7 and det["precision"] > 0.5 and det["f1"] > 0.6
    assert trk["mota"] > 0.2 and trk["idf1"] > 0.5 and 0 < trk["hota"] <= 1
    for fmt in ("coco", "voc"):
        other = reports[fmt]
        assert other["detections"]["tp"] == det["tp"]
        if fmt == "coco":  # COCO marks the same "don't care" heads as MOT's flag 0
            assert other["detections"] == det and other["tracks"]["detection"] == r["tracks"]["detection"]
            ot = other["tracks"]["tracking"]
            # box IoU (HOTA) sees the MOT file's 2-decimal boxes; the centre rule (the rest) does not
            assert {k: v for k, v in ot.items() if k not in ("hota", "deta", "assa", "loca")} == \
                {k: v for k, v in trk.items() if k not in ("hota", "deta", "assa", "loca")}
            assert ot["hota"] == pytest.approx(trk["hota"], abs=1e-3)
    # scoring the written MOT file (--pred) gives the run's own tracking figures
    track_to_mot(clip["folder"], PIXEL_UM, 40.0, tmp_path / "p.txt", progress=False)
    again = eval_heads(clip["mot"], None, tmp_path / "p.txt", None, None, "0:24", progress=False)
    assert again["tracks"]["tracking"]["mota"] == pytest.approx(trk["mota"])
    assert again["tracks"]["tracking"]["idf1"] == pytest.approx(trk["idf1"])
    assert again["tracks"]["detection"] == r["tracks"]["detection"]


def test_eval_heads_cli_writes_json_and_scores_frame_ranges(clip, tmp_path):
    out = tmp_path / "m.json"
    proc = run_cli("eval", "heads", "--input", str(clip["tiff"]), "--labels", str(clip["mot"]), "--um-per-px",
                   str(PIXEL_UM), "--fps", "40", "--frames", "12:", "--weights", "unext_seg", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["frames"] == [12, 24] and report["detections"]["frames"] == 12
    assert report["seg_weights"] == "unext_seg"
    assert {"mota", "idf1", "hota"} <= set(report["tracks"]["tracking"]) and "| MOTA |" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["eval", "heads", "--input", "{folder}", "--labels", "{dir}/nothing.json", "--um-per-px", "0.2", "--fps", "40"],
     "nothing.json: no such file"),
    (["eval", "heads", "--input", "{folder}", "--labels", "{dir}/bad.txt", "--um-per-px", "0.2", "--fps", "40"],
     "line 1: expected frame,id,x,y,w,h"),
    (["eval", "heads", "--input", "{folder}", "--pred", "{mot}", "--labels", "{mot}"], "not both"),
    (["eval", "heads", "--input", "{folder}", "--labels", "{voc}", "--fps", "40"], "--um-per-px"),
    (["eval", "heads", "--input", "{tiff}", "--labels", "{mot}", "--um-per-px", "0.2"], "stores no frame rate; give --fps"),
    (["eval", "heads", "--input", "{tiff}", "--labels", "{mot}", "--um-per-px", "0.2", "--fps", "40", "--weights",
      "{dir}/none.pt"], "none.pt not found"),
    (["track", "{dir}/none.avi", "--um-per-px", "0.2", "--out", "{dir}/x.txt"], "none.avi: no such file"),
    (["track", "{folder}", "--um-per-px", "-1", "--fps", "40", "--out", "{dir}/x.txt"], "--um-per-px"),
    (["track", "{folder}", "--um-per-px", "0.2", "--fps", "40", "--frames", "30:40", "--out", "{dir}/x.txt"],
     "no frame of the 24"),
])
def test_bad_input_is_one_line_exit_2(clip, args, message, capsys, monkeypatch):
    from app.cli import main

    (clip["dir"] / "bad.txt").write_text("1,2,3\n")
    monkeypatch.setattr(sys, "argv", ["micromanip", *[a.format(**clip) for a in args]])
    with pytest.raises(SystemExit) as code:  # the console entry point, in this process (a subprocess each: ~10 s)
        main()
    err = capsys.readouterr().err
    assert code.value.code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_labels_that_name_other_images_are_refused(clip, tmp_path):
    doc = json.loads(clip["coco"].read_text())
    doc["images"][3]["file_name"] = "elsewhere.png"
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match="labels name frame 3 'elsewhere.png'"):
        eval_heads(tmp_path / "c.json", clip["folder"], None, PIXEL_UM, 40.0, None, progress=False)


def test_eval_heads_on_the_shared_real_video(shared_dir):
    data = shared_dir / "data" / "sperm_video_real"
    r = eval_heads(data / "annotations" / "train.json", data / "train", None, 0.42, 30.0, "142:152", progress=False)
    assert r["labelled_tracks"] == 121 and r["detections"]["frames"] == 10
    assert r["detections"]["labelled"] == int(load_labels(data / "annotations" / "train.json")
                                               .select(range(142, 152)).ignore.size)
    assert 0.0 < r["detections"]["f1"] <= 1.0 and -1.0 < r["tracks"]["tracking"]["mota"] <= 1.0
