"""Head detection and tracking on real video and on the twin, scored alike (``perception.evaluation``):
precision, recall, F1 (a head counts when its centre lies in a labelled box, one-to-one), MOTA, IDF1
(py-motmetrics), HOTA (motrics, box IoU), with the shipped models over whole frames.

Real: the shared development video (``../shared/data/sperm_video_real``, 640 x 384, about 0.42 um/px,
COCO-video labels), its last 30 frames (the validation part: train on the rest) and all 152 frames,
through ``micromanip eval heads``. Twin: sequences rendered at an odd size (697 x 527, 0.1465 um/px), each
head within 2 um of focus and outside the pipette boxed by a square the size of the real labels' median
box (7 um); other heads are "don't care".

    .venv/bin/python benchmarks/heads_real.py [--data ../shared/data/sperm_video_real --um-per-px 0.42]

Saves docs/results/heads_real.json (benchmarks/result_store.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.recordings import eval_heads
from perception.evaluation import HeadBoxes, score_detections, score_heads
from perception.runtime.pipeline import Models, PerceptionConfig
from perception.runtime.video_tracking import RecordingTracker
from result_store import Headline, Result, Table, save_result  # benchmarks/ (this script's folder)

ROOT = Path(__file__).resolve().parent.parent
TWIN_ROI = (600, 380, 697, 527)
TWIN_BOX_UM = 7.0


def twin(seqs: int, frames: int) -> dict:
    from app.config import load_rig_config
    from app.rig import build_rig
    from app.trials import trial_config
    from drivers.interfaces import Roi

    cfg = PerceptionConfig(depth_source="none", pipette_axis_deg=None)
    models = Models.load(cfg)
    rows: dict[str, list] = {k: [] for k in ("tf", "tb", "tid", "ign", "df", "db", "pf", "pb", "pid")}
    for s in range(seqs):
        config, settings = trial_config(load_rig_config(ROOT / "configs" / "sim.yaml"), "motile", "lockstep")
        with build_rig(config, seed=700 + s) as rig:
            rig.camera.set_roi(Roi(*TWIN_ROI))
            rig.focus.move_to_um(settings.focus_start_um).wait(5)
            tracker = RecordingTracker(models, rig.frames.pixel_size_um, rig.camera.frame_rate_hz,
                                       (TWIN_ROI[3], TWIN_ROI[2]), cfg)
            box = TWIN_BOX_UM / rig.frames.pixel_size_um
            for i in range(frames):
                f = rig.frames.snap()
                index = s * frames + i
                res = tracker.step(i, f.pixels)
                for t in f.truth.sperm:
                    x, y = t.head_px
                    if 0 <= x < TWIN_ROI[2] and 0 <= y < TWIN_ROI[3]:
                        rows["tf"].append(index)
                        rows["tb"].append([x - box / 2, y - box / 2, box, box])
                        rows["tid"].append(s * 100_000 + t.id)
                        rows["ign"].append(abs(t.depth_um) >= 2.0 or t.captured)
                rows["df"] += [index] * len(res.det_xywh)
                rows["db"] += res.det_xywh.tolist()
                rows["pf"] += [index] * len(res.track_xywh)
                rows["pb"] += res.track_xywh.tolist()
                rows["pid"] += (s * 100_000 + res.track_ids).tolist()
    every = range(seqs * frames)
    truth = HeadBoxes.from_rows(rows["tf"], rows["tb"], rows["tid"], frames=every, ignore=rows["ign"])
    dets = HeadBoxes.from_rows(rows["df"], rows["db"], frames=every)
    tracks = HeadBoxes.from_rows(rows["pf"], rows["pb"], rows["pid"], frames=every)
    return {"frames": [0, seqs * frames], "detections": score_detections(dets, truth), "tracks": score_heads(tracks, truth)}


def _row(name: str, r: dict) -> list:
    d, td, t = r["detections"], r["tracks"]["detection"], r["tracks"]["tracking"]
    return [name, d["frames"], d["labelled"], f"{d['precision']:.3f}", f"{d['recall']:.3f}", f"{d['f1']:.3f}",
            f"{td['f1']:.3f}", f"{t['mota']:.3f}", f"{t['idf1']:.3f}", f"{t['hota']:.3f}", t["id_switches"],
            f"{t['labelled_tracks']} / {t['predicted_tracks']}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sperm_video_real")
    ap.add_argument("--um-per-px", type=float, default=0.42)
    ap.add_argument("--fps", type=float, default=30.0, help="the shared video's rate is not documented")
    ap.add_argument("--twin-seqs", type=int, default=2)
    ap.add_argument("--twin-frames", type=int, default=60)
    args = ap.parse_args()
    labels, frames = args.data / "annotations" / "train.json", args.data / "train"
    real = {}
    if labels.is_file():
        for name, span in (("real, last 30 frames (validation)", "122:152"), ("real, all 152 frames", None)):
            real[name] = eval_heads(labels, frames, None, args.um_per_px, args.fps, span)
    else:
        print(f"{labels} is absent: real video skipped")
    tw = twin(args.twin_seqs, args.twin_frames)
    columns = ["video", "frames", "labelled heads", "precision", "recall", "F1", "F1 of tracked heads", "MOTA",
               "IDF1", "HOTA", "ID switches", "labelled / predicted tracks"]
    rows = [_row(n, r) for n, r in real.items()]
    rows.append(_row(f"twin, {args.twin_seqs} x {args.twin_frames} frames, 697 x 527", tw))
    table = Table("Head detection and tracking, shipped models, whole frames", columns, rows, notes=(
        f"Real: `micromanip eval heads --input {frames} --labels {labels} --um-per-px {args.um_per_px:g} --fps "
        f"{args.fps:g} [--frames 122:152]`. Detections: every segmented head blob; tracked heads and MOTA/IDF1/HOTA: "
        "confirmed tracks measured in the frame. HOTA on box IoU: a blob's box is not the annotator's box."))
    print(f"\n{table.caption}\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    heads = []
    val = real.get("real, last 30 frames (validation)")
    if val is not None:
        t = val["tracks"]["tracking"]
        heads = [Headline("head detection, real video (shared development set, last 30 frames)",
                          f"F1 {val['detections']['f1']:.2f} (precision {val['detections']['precision']:.2f}, recall "
                          f"{val['detections']['recall']:.2f})", "F1 >= 0.90"),
                 Headline("head tracking, same frames", f"MOTA {t['mota']:.2f}, IDF1 {t['idf1']:.2f}, HOTA {t['hota']:.2f}",
                          "MOTA >= 0.75, IDF1 >= 0.80")]
    save_result(Result("heads_real", "Head detection and tracking on real video and on the twin", [table],
                       headlines=heads, section="perception",
                       data={"args": {k: str(v) for k, v in vars(args).items()}, "real": real, "twin": tw}))


if __name__ == "__main__":
    main()
