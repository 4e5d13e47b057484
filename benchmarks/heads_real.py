"""Head detection and tracking on labelled real video and on the twin, scored alike, with the shipped
segmentation and any other weights given (``--compare NAME=WEIGHTS``).

Real: the labelled development video (``../shared/data/sperm_video_real``, COCO-video labels) through
``micromanip eval heads``, whole frames resampled to the network's pixel size. Two stretches: the
validation stretch the segmentation's training holds out (from ``real_val_from_frame`` on, at
``real_um_per_px``, both read from ``configs/train/seg.yaml``) and all frames. Weights trained on the twin
alone (e.g. ``--compare twin-only=runs/seg-twin/best.pt``) tell how a microscope the network never saw fares.

Twin: sequences of motile campaigns rendered at an odd size (697 x 527 at the reference rig's 0.1465
um/px), each head within 2 um of focus and outside the pipette boxed by a square the size of the real
labels' median box (7 um); other heads are "don't care".

Scores (``perception.evaluation``): precision, recall, F1 (a head counts when its centre lies in a labelled
box, one-to-one); MOTA and IDF1 by py-motmetrics, HOTA by motrics (box IoU).

    .venv/bin/python benchmarks/heads_real.py [--data DIR] [--compare NAME=WEIGHTS ...]
    .venv/bin/python benchmarks/heads_real.py --max-frames 4 --twin-frames 4 --no-save   # a quick check

Saves docs/results/heads_real.json (benchmarks/result_store.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.recordings import eval_heads
from perception.evaluation import HeadBoxes, score_detections, score_heads
from perception.runtime.pipeline import Models
from perception.runtime.video_tracking import RECORDING_MIN_HEAD_AREA_UM2, RecordingTracker, recording_config
from perception.training.config import load_train_config
from result_store import Headline, Result, Table, save_result  # benchmarks/ (this script's folder)

ROOT = Path(__file__).resolve().parent.parent
SEG_CONFIG = ROOT / "configs" / "train" / "seg.yaml"
TWIN_ROI = (600, 380, 697, 527)
TWIN_BOX_UM = 7.0
SHIPPED = ("shipped", "unext_seg")


def twin(seqs: int, frames: int, weights: str) -> dict:
    """Detections and tracks over simulated motile-campaign sequences, scored as ``eval heads`` scores."""
    from app.config import load_rig_config
    from app.rig import build_rig
    from app.trials import trial_config
    from drivers.interfaces import Roi

    cfg = recording_config(seg_weights=weights)
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
                rows["pf"] += (s * frames + res.track_frames).tolist()
                rows["pb"] += res.track_xywh.tolist()
                rows["pid"] += (s * 100_000 + res.track_ids).tolist()
    every = range(seqs * frames)
    truth = HeadBoxes.from_rows(rows["tf"], rows["tb"], rows["tid"], frames=every, ignore=rows["ign"])
    dets = HeadBoxes.from_rows(rows["df"], rows["db"], frames=every)
    tracks = HeadBoxes.from_rows(rows["pf"], rows["pb"], rows["pid"], frames=every)
    return {"frames": [0, seqs * frames], "detections": score_detections(dets, truth), "tracks": score_heads(tracks, truth)}


def round_debris(weights: str, seeds: range) -> dict:
    """Heads and head-sized spheres tracked after 8 frames of a still field (``sim.scenarios.round_debris_field``,
    one field a seed, the reference rig's 0.1465 um/px): a tracked sphere is debris handed to control."""
    import numpy as np

    from drivers.frame import Frame
    from perception.runtime.pipeline import PerceptionConfig, PerceptionPipeline
    from sim.scenarios import FIELD_SPHERES_UM, round_debris_field
    from sim.standalone import CropRenderer

    cfg = PerceptionConfig(roi_px=(512, 512), depth_source="none", seg_weights=weights)
    models = Models.load(cfg)
    crops = CropRenderer()
    counts = {"heads": 0, "heads_tracked": 0, "spheres": 0, "spheres_tracked": 0}
    for seed in seeds:
        scene, rng = round_debris_field(seed), np.random.default_rng(seed)
        pipe = PerceptionPipeline(models, cfg, sensor_shape=(512, 512))
        for k in range(8):
            pixels, _ = crops.image(scene, crops.view((0.0, 0.0), 10.0, 512), rng)
            est = pipe.process(Frame(pixels, k, k * 0.025, crops.pixel_size_um, (0.0, 0.0), 0.0, 4.0))
        at_um = (np.array([t.position_px for t in est.tracks]).reshape(-1, 2) - 256) * crops.pixel_size_um
        for what, where in (("heads", np.array([c.head_center_um()[:2] for c in scene.sperm])),
                            ("spheres", FIELD_SPHERES_UM)):
            d = np.linalg.norm(at_um[:, None] - where[None], axis=2) if len(at_um) else np.full((1, len(where)), np.inf)
            counts[what] += len(where)
            counts[f"{what}_tracked"] += int((d.min(axis=0) < 2.0).sum())
    return counts


def _row(name: str, r: dict) -> list:
    d, td, t = r["detections"], r["tracks"]["detection"], r["tracks"]["tracking"]
    return [name, d["frames"], d["labelled"], f"{d['precision']:.3f}", f"{d['recall']:.3f}", f"{d['f1']:.3f}",
            f"{td['f1']:.3f}", f"{t['mota']:.3f}", f"{t['idf1']:.3f}", f"{t['hota']:.3f}", t["id_switches"],
            f"{t['labelled_tracks']} / {t['predicted_tracks']}"]


def _span(start: int, stop: int | None, limit: int | None) -> str:
    """``eval heads --frames`` for frames ``start`` .. ``stop`` - 1, at most ``limit`` of them."""
    if limit is not None:
        stop = start + limit if stop is None else min(stop, start + limit)
    return f"{start}:{'' if stop is None else stop}"


def _weights(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected NAME=WEIGHTS, got {text!r}")
    return name, path


def dev_video_parser(description: str):
    """The segmentation's training config (which frames of the development video it holds out, at which
    pixel size) and a parser with the video's ``--data`` and ``--fps``: what every benchmark on that video
    starts from."""
    seg = load_train_config(SEG_CONFIG)
    shared = ROOT / seg.real_video if seg.real_video is not None else ROOT.parent / "shared/data/sperm_video_real"
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", type=Path, default=shared, help="labelled video (annotations/train.json, train/)")
    ap.add_argument("--fps", type=float, default=30.0, help="the shared video's rate is not documented")
    return seg, ap


def main() -> None:
    seg, ap = dev_video_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--compare", action="append", type=_weights, default=[], metavar="NAME=WEIGHTS",
                    help="also score these segmentation weights (repeatable), e.g. twin-only=runs/seg-twin/best.pt")
    ap.add_argument("--twin-seqs", type=int, default=2)
    ap.add_argument("--twin-frames", type=int, default=60)
    ap.add_argument("--max-frames", type=int, default=None, help="score at most this many frames of each real stretch")
    ap.add_argument("--debris-fields", type=int, default=6, help="round-debris fields (seeds) per weights")
    ap.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    args = ap.parse_args()
    um_per_px, val_from = seg.real_um_per_px, seg.real_val_from_frame
    labels, frames = args.data / "annotations" / "train.json", args.data / "train"
    stretches = [(f"real, frames {val_from}- (validation)", _span(val_from, None, args.max_frames)),
                 ("real, all frames", _span(0, None, args.max_frames))]
    if not labels.is_file():
        print(f"{labels} is absent: real video skipped")
    rows, data = [], {"args": {k: str(v) for k, v in vars(args).items()}, "real_um_per_px": um_per_px,
                      "real_val_from_frame": val_from, "real": {}, "twin": {}}
    debris_rows: list[list] = []
    for name, weights in [SHIPPED, *args.compare]:
        if labels.is_file():
            for what, span in stretches:
                r = eval_heads(labels, frames, None, um_per_px, args.fps, span, seg_weights=weights)
                data["real"][f"{name}: {what}"] = r
                rows.append(_row(f"{name}: {what}", r))
        tw = twin(args.twin_seqs, args.twin_frames, weights)
        data["twin"][name] = tw
        rows.append(_row(f"{name}: twin, {args.twin_seqs} x {args.twin_frames} frames, 697 x 527", tw))
        rd = data.setdefault("round_debris", {})[name] = round_debris(weights, range(args.debris_fields))
        debris_rows.append([name, args.debris_fields, f"{rd['heads_tracked']} / {rd['heads']}",
                            f"{rd['spheres_tracked']} / {rd['spheres']}"])
    columns = ["weights: video", "frames", "labelled heads", "precision", "recall", "F1", "F1 of tracked heads",
               "MOTA", "IDF1", "HOTA", "ID switches", "labelled / predicted tracks"]
    compared = "".join(f"; {n}: `{w}`" for n, w in args.compare)
    table = Table("Head detection and tracking over whole frames, real video and twin", columns, rows, notes=(
        f"Real: `micromanip eval heads --input {frames} --labels {labels} --um-per-px {um_per_px:g} --fps "
        f"{args.fps:g} --frames {val_from}:` (validation: frames the segmentation's training holds out, "
        f"configs/train/seg.yaml) and without `--frames` (all frames). Weights: shipped `{SHIPPED[1]}`{compared}. "
        f"Detections: every segmented head blob of at least {RECORDING_MIN_HEAD_AREA_UM2:g} um^2 "
        "(RECORDING_MIN_HEAD_AREA_UM2); tracked heads "
        "and MOTA/IDF1/HOTA: confirmed tracks, from their first sighting, measured in the frame. HOTA on box "
        "IoU: a blob's box is not the annotator's box."))
    debris = Table("Head-sized round debris on the twin: tracked heads and spheres", ["weights", "fields",
                   "heads tracked", "spheres tracked"], debris_rows, notes=(
        "Each field (`sim.scenarios.round_debris_field`, seeds 0..fields-1): five immotile heads lying flat and six "
        "spheres of radius 1.3-1.7 um within 1 um of their plane, 8 still frames at 0.1465 um/px; counted: confirmed "
        "tracks within 2 um of each. A tracked sphere is debris perception hands to control as a cell."))
    for t in (table, debris):
        cols = t.columns
        print(f"\n{t.caption}\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for row in t.rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
    heads = []
    val = data["real"].get(f"{SHIPPED[0]}: {stretches[0][0]}")
    if val is not None:
        d, t = val["detections"], val["tracks"]["tracking"]
        heads = [Headline(f"head detection, real development video, held-out frames {val_from}- (shipped weights)",
                          f"F1 {d['f1']:.2f} (precision {d['precision']:.2f}, recall {d['recall']:.2f})", "F1 >= 0.90"),
                 Headline("head tracking, same frames", f"MOTA {t['mota']:.2f}, IDF1 {t['idf1']:.2f}, HOTA {t['hota']:.2f}",
                          "MOTA >= 0.75, IDF1 >= 0.80")]
    if args.no_save:
        return
    save_result(Result("heads_real", "Head detection and tracking on real video and on the twin", [table, debris],
                       headlines=heads, section="perception on video", data=data))


if __name__ == "__main__":
    main()
