"""Head detection and tracking on labelled real video next to the twin's, with the shipped segmentation
(or any weights given).

Real: the labelled development video (``../shared/data/sperm_video_real``, 0.4 um/px, frames come in runs
of ~3 copies); the whole frame goes through the same perception the rig runs (segmentation at the network's
pixel size, head instances, the tracker), scored on the validation stretch at its end (frames 116-151), which
the shipped weights never trained on. A second set of weights trained on the twin alone (``--compare
twin-only=runs/seg-twin/best.pt``) tells how a microscope the network never saw fares.

Twin: simulated sequences at the controller's ROI, scored the same way (heads within 4 um of focus and
outside the pipette are scored; the others are "don't care").

    .venv/bin/python benchmarks/real_heads.py [--video ../shared/data/sperm_video_real] [--compare NAME=PATH]

Scores: perception.evaluation (centre in box, one to one; MOTA and IDF1 by py-motmetrics, HOTA by motrics).
Saves docs/results/real_heads.json (benchmarks/result_store.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from drivers.frame import Frame
from perception.evaluation import HeadBoxes, load_labels, score_heads
from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline
from result_store import Headline, Result, Table, save_result  # benchmarks/ (this script's folder)

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT.parent / "shared" / "data" / "sperm_video_real"


def _box(det) -> list[float]:
    """The axis-aligned box of the ellipse with the blob's area, elongation and orientation."""
    e = det.elongation if det.elongation and np.isfinite(det.elongation) else 1.0
    b = np.sqrt(max(det.area_px, 1e-6) / (np.pi * e))
    a, t = e * b, np.radians(det.orientation_deg)
    hx, hy = float(np.hypot(a * np.cos(t), b * np.sin(t))), float(np.hypot(a * np.sin(t), b * np.cos(t)))
    return [det.centroid_px[0] - hx, det.centroid_px[1] - hy, 2 * hx, 2 * hy]


def run_video(frames: list[tuple[int, np.ndarray]], um_per_px: float, fps: float, models: Models,
              cfg: PerceptionConfig) -> tuple[HeadBoxes, HeadBoxes, float]:
    """Detections and tracks (those measured in each frame) over consecutive frames; frames per second."""
    h, w = frames[0][1].shape
    pipe = PerceptionPipeline(models, cfg.model_copy(update={"roi_px": (w, h)}), sensor_shape=(h, w),
                              clock=time.perf_counter)
    det = {"f": [], "b": []}
    trk = {"f": [], "b": [], "i": []}
    t0 = time.perf_counter()
    for index, pixels in frames:
        est = pipe.process(Frame(pixels, index, index / fps, um_per_px, (0.0, 0.0), 0.0, 1e3 / fps))
        for d in est.detections:
            det["f"].append(index)
            det["b"].append(_box(d))
        for t in est.tracks:
            if t.misses == 0:
                near = min(est.detections, key=lambda d: np.hypot(d.centroid_px[0] - t.position_px[0],
                                                                  d.centroid_px[1] - t.position_px[1]))
                trk["f"].append(index)
                trk["b"].append(_box(near))
                trk["i"].append(t.id)
    rate = len(frames) / (time.perf_counter() - t0)
    done = [i for i, _ in frames]
    return (HeadBoxes.from_rows(det["f"], det["b"], frames=done),
            HeadBoxes.from_rows(trk["f"], trk["b"], trk["i"], frames=done), rate)


def real(video: Path, um_per_px: float, fps: float, val_from: int, weights: str) -> dict:
    truth = load_labels(video / "annotations" / "train.json")
    frames = []
    for index in truth.frames:
        img = cv2.imread(str(video / "train" / truth.names[int(index)]), cv2.IMREAD_GRAYSCALE)
        if img.max() >= 10:  # the video's first frames are black
            frames.append((int(index), img))
    cfg = PerceptionConfig(seg_weights=weights, depth_source="none", pipette_axis_deg=None, inference_threads=2)
    models = Models.load(cfg)
    val = [(i, p) for i, p in frames if i >= val_from]
    dets, tracks, rate = run_video(val, um_per_px, fps, models, cfg)
    scored = range(val_from, int(truth.frames.max()) + 1)
    out = score_heads(tracks, truth, scored)
    out["per_frame_detection"] = score_heads(dets, truth, scored)["detection"]
    out["frames_per_s"] = rate
    out["network_pixel_um"] = models.seg_pixel_um
    return out


def twin(seqs: int, frames: int, weights: str) -> dict:
    """Detections and tracks at the controller ROI of simulated motile-campaign sequences."""
    from app.config import load_rig_config
    from app.rig import build_rig
    from app.trials import trial_config
    from drivers.interfaces import Roi

    roi = (640, 408, 640, 384)
    cfg = PerceptionConfig(seg_weights=weights, roi_px=roi[2:], depth_source="none")
    models = Models.load(cfg)
    rows: dict[str, list] = {k: [] for k in ("tf", "tb", "tid", "ign", "df", "db", "pf", "pb", "pid")}
    half = 1.5 / 0.1465  # a simulated head's box: 3 x 3 um about its centre
    for s in range(seqs):
        config, settings = trial_config(load_rig_config(ROOT / "configs" / "sim.yaml"), "motile", "lockstep")
        with build_rig(config, seed=700 + s) as rig:
            rig.camera.set_roi(Roi(*roi))
            rig.focus.move_to_um(settings.focus_start_um).wait(5)
            pipe = PerceptionPipeline(models, cfg, clock=time.perf_counter)
            for i in range(frames):
                f = rig.frames.snap()
                est = pipe.process(f)
                index = s * frames + i
                for t in f.truth.sperm:
                    if 0 <= t.head_px[0] < roi[2] and 0 <= t.head_px[1] < roi[3]:
                        rows["tf"].append(index)
                        rows["tb"].append([t.head_px[0] - half, t.head_px[1] - half, 2 * half, 2 * half])
                        rows["tid"].append(s * 100_000 + t.id)
                        rows["ign"].append(abs(t.depth_um) >= 4.0 or t.captured)
                for d in est.detections:
                    rows["df"].append(index)
                    rows["db"].append(_box(d))
                for t in est.tracks:
                    if t.misses == 0:
                        rows["pf"].append(index)
                        rows["pb"].append([t.position_px[0] - half, t.position_px[1] - half, 2 * half, 2 * half])
                        rows["pid"].append(s * 100_000 + t.id)
    every = range(seqs * frames)
    truth = HeadBoxes.from_rows(rows["tf"], rows["tb"], rows["tid"], frames=every, ignore=rows["ign"])
    out = score_heads(HeadBoxes.from_rows(rows["pf"], rows["pb"], rows["pid"], frames=every), truth)
    out["per_frame_detection"] = score_heads(HeadBoxes.from_rows(rows["df"], rows["db"], frames=every),
                                             truth)["detection"]
    return out


def _row(name: str, r: dict) -> list:
    d, t = r["per_frame_detection"], r["tracking"]
    return [name, f"{d['precision']:.3f}", f"{d['recall']:.3f}", f"{d['f1']:.3f}", f"{t['mota']:.3f}",
            f"{t['idf1']:.3f}", f"{t['hota']:.3f}", t["id_switches"], d["labelled"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--um-per-px", type=float, default=0.4)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--val-from", type=int, default=116, help="first frame of the validation stretch")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=WEIGHTS",
                    help="also score these weights (e.g. twin-only=runs/seg-twin/best.pt)")
    ap.add_argument("--seqs", type=int, default=2)
    ap.add_argument("--frames", type=int, default=120)
    args = ap.parse_args()
    weights = [("shipped", "unext_seg")] + [tuple(c.split("=", 1)) for c in args.compare]
    rows, data = [], {"args": {k: str(v) for k, v in vars(args).items()}}
    for name, w in weights:
        if args.video.is_dir():
            r = real(args.video, args.um_per_px, args.fps, args.val_from, w)
            rows.append(_row(f"{name}: real video, frames {args.val_from}-", r))
            data[f"{name}_real"] = r
        tw = twin(args.seqs, args.frames, w)
        rows.append(_row(f"{name}: twin, {args.seqs} x {args.frames} frames", tw))
        data[f"{name}_twin"] = tw
    table = Table("Head detection (each frame) and tracking (tracks measured in the frame)",
                  ["weights: data", "precision", "recall", "F1", "MOTA", "IDF1", "HOTA", "ID switches", "labelled heads"],
                  rows, notes="Real: the development video's validation stretch (the shipped weights trained on "
                              "frames before it; twin-only weights on no real frame), whole frame at 0.4 um/px. "
                              "Twin: controller ROI 640x384 of motile campaigns. Detection counts a blob whose box "
                              "centre lies in a labelled head box, one to one; MOTA and IDF1 py-motmetrics, HOTA motrics.")
    print(f"\n{table.caption}\n| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    headlines = []
    if "shipped_real" in data:
        r = data["shipped_real"]
        headlines.append(Headline("real heads, development video's held-out frames (F1 / MOTA / IDF1)",
                                  f"{r['per_frame_detection']['f1']:.2f} / {r['tracking']['mota']:.2f} / "
                                  f"{r['tracking']['idf1']:.2f}", "F1 >= 0.90, MOTA >= 0.75, IDF1 >= 0.80"))
    save_result(Result("real_heads", "Head detection and tracking on real video and on the twin", [table],
                       headlines=headlines, section="perception", data=data))


if __name__ == "__main__":
    main()
