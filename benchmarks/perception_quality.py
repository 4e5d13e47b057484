"""Perception quality on simulated sequences with ground truth (shipped models).

1. Tracking: MOTA, IDF1, identity switches (py-motmetrics) and HOTA (motrics) through perception.evaluation
   (a track counts on a head within 15 px along each axis; scored heads lie within 4 um of focus and
   outside the pipette; a track on another real head is "don't care", neither hit nor false positive).
2. Depth of a motile target over time: mean |error| of the per-frame argmax vs the Bayes filter
   (crops at the true head position, frames with the true depth inside -2.25..+2.25 um), against the
   head's depth in each frame and against the depth of the cell's swimming path, which the pipette must
   match while the head swings about it with the beat.
3. Depth from focus vs the network, on immotile and on motile cells (one +-3 um sweep per cell).

    .venv/bin/python benchmarks/perception_quality.py [--seqs 3 --frames 120 --cells 12]

Saves docs/results/perception_quality.json (benchmarks/result_store.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from app.config import load_rig_config
from app.rig import build_rig
from app.trials import trial_config
from drivers.interfaces import Roi
from perception.evaluation import HeadBoxes, score_tracking
from perception.runtime.backend import softmax
from perception.runtime.depth_filter import DepthBayesFilter
from perception.runtime.focus import focus_sweep
from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline
from result_store import Result, Table, save_result  # benchmarks/ (this script's folder)

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "configs" / "sim.yaml"
ROI = (640, 408, 640, 384)


HEAD_BOX_PX = 30  # a simulated head's box for scoring: a track counts when it lies within 15 px (each axis)


def _box(xy: tuple[float, float]) -> list[float]:
    return [xy[0] - HEAD_BOX_PX / 2, xy[1] - HEAD_BOX_PX / 2, HEAD_BOX_PX, HEAD_BOX_PX]


def tracking(seqs: int, frames: int, models: Models) -> dict:
    """Scored by perception.evaluation (py-motmetrics, motrics). Heads far from focus (>= 4 um) or inside the
    pipette are "don't care", as distractors are in the MOT benchmarks: a track on one is neither hit nor
    false positive. Sequences are laid end to end with their own ids, so the scores are over all of them."""
    rows: dict[str, list] = {"tf": [], "tb": [], "tid": [], "ign": [], "pf": [], "pb": [], "pid": []}
    for s in range(seqs):
        config, settings = trial_config(load_rig_config(RIG), "motile", "lockstep")
        with build_rig(config, seed=500 + s) as rig:
            rig.camera.set_roi(Roi(*ROI))
            rig.focus.move_to_um(settings.focus_start_um).wait(5)
            pipe = PerceptionPipeline(models, PerceptionConfig(roi_px=ROI[2:], depth_source="none"),
                                      clock=time.perf_counter)
            for i in range(frames):
                f = rig.frames.snap()
                est = pipe.process(f)
                index = s * frames + i
                for t in f.truth.sperm:
                    if 0 <= t.head_px[0] < ROI[2] and 0 <= t.head_px[1] < ROI[3]:
                        rows["tf"].append(index)
                        rows["tb"].append(_box(t.head_px))
                        rows["tid"].append(s * 100_000 + t.id)
                        rows["ign"].append(abs(t.depth_um) >= 4.0 or t.captured)
                for tr in est.tracks:
                    rows["pf"].append(index)
                    rows["pb"].append(_box(tr.position_px))
                    rows["pid"].append(s * 100_000 + tr.id)
    every = range(seqs * frames)
    truth = HeadBoxes.from_rows(rows["tf"], rows["tb"], rows["tid"], frames=every, ignore=rows["ign"])
    pred = HeadBoxes.from_rows(rows["pf"], rows["pb"], rows["pid"], frames=every)
    return score_tracking(pred, truth)


def depth_over_time(cells: int, frames: int, models: Models) -> dict:
    # Against the head's depth in each frame, and against the depth of the cell's swimming path: a motile
    # head swings up to ~2 um in z with the beat (the beat plane rolls), from one frame to the next; the
    # pipette must match the path, around which the head swings.
    errs_argmax, errs_bayes, path_argmax, path_bayes = [], [], [], []
    depths = np.asarray(models.depths_um)
    for c in range(cells):
        config, settings = trial_config(load_rig_config(RIG), "motile", "lockstep")
        with build_rig(config, seed=900 + c) as rig:
            rig.camera.set_roi(Roi(*ROI))
            cell = rig.world.scene.sperm[0]
            rig.focus.move_to_um(float(cell.head_center_um()[2] + np.random.default_rng(c).uniform(-1.5, 1.5))).wait(5)
            filt = DepthBayesFilter(depths, 1.0)
            pipe = PerceptionPipeline(models, PerceptionConfig(), clock=time.perf_counter)
            for _ in range(frames):
                rig.stage.move_to_um(*cell.head_center_um()[:2]).wait(1)  # keep it in view, as the servo does
                f = rig.frames.snap()
                t = f.truth.by_id(cell.id)
                if t is None or t.captured:
                    break
                crop = pipe._crop(f, t.head_px)
                p = softmax(np.asarray(models.depth(crop[None, None]))[0], 0)
                est = filt.step(f.capture_time_s, p)
                argmax_um = depths[int(np.argmax(p))]
                if abs(t.depth_um) <= 2.25:
                    errs_argmax.append(abs(argmax_um - t.depth_um))
                    errs_bayes.append(abs(est.mean_um - t.depth_um))
                path_um = float(cell.path_pos_um[2] - f.focus_z_um)
                if abs(path_um) <= 2.25:
                    path_argmax.append(abs(argmax_um - path_um))
                    path_bayes.append(abs(est.mean_um - path_um))
    return {"argmax_mean_abs_error_um": float(np.mean(errs_argmax)), "bayes_mean_abs_error_um": float(np.mean(errs_bayes)),
            "frames": len(errs_argmax), "path_argmax_mean_abs_error_um": float(np.mean(path_argmax)),
            "path_bayes_mean_abs_error_um": float(np.mean(path_bayes)), "path_frames": len(path_argmax)}


def dff_vs_net(cells: int, models: Models, motility: str) -> dict:
    dff_err, net_err, dff_ok = [], [], 0
    depths = np.asarray(models.depths_um)
    for c in range(cells):
        config, _ = trial_config(load_rig_config(RIG), motility, "lockstep")
        with build_rig(config, seed=1300 + c) as rig:
            rig.camera.set_roi(Roi(896, 536, 128, 128))
            cell = rig.world.scene.sperm[0]
            rig.stage.move_to_um(*cell.head_center_um()[:2]).wait(2)
            rng = np.random.default_rng(c)
            rig.focus.move_to_um(float(cell.head_center_um()[2] + rng.uniform(-1.5, 1.5))).wait(5)
            f = rig.frames.snap()
            t = f.truth.by_id(cell.id)
            pipe = PerceptionPipeline(models, PerceptionConfig(), clock=time.perf_counter)
            p = softmax(np.asarray(models.depth(pipe._crop(f, t.head_px)[None, None]))[0], 0)
            net_err.append(abs(float(p @ depths) - t.depth_um))
            z_focus = rig.focus.z_um()
            res = focus_sweep(rig.focus, rig.frames, np.arange(-3.0, 3.01, 0.25), (32, 32, 64, 64), "tenengrad")
            dff_ok += int(res.reliable)
            # depth of the cell relative to the focal plane at the snapshot
            dff_err.append(abs((res.best_z_um - z_focus) - t.depth_um) if res.reliable else 3.0)
    return {"net_mean_abs_error_um": float(np.mean(net_err)), "dff_mean_abs_error_um": float(np.mean(dff_err)),
            "dff_reliable_peaks": f"{dff_ok}/{cells}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--cells", type=int, default=12)
    args = ap.parse_args()
    models = Models.load(PerceptionConfig())
    tr = tracking(args.seqs, args.frames, models)
    t_track = Table(f"Tracking on the twin, {args.seqs} x {args.frames} frames (controller ROI {ROI[2]}x{ROI[3]})",
                    ["MOTA", "IDF1", "HOTA", "ID switches", "labelled heads", "FP", "FN"],
                    [[f"{tr['mota']:.3f}", f"{tr['idf1']:.3f}", f"{tr['hota']:.3f}", tr["id_switches"],
                      tr["labelled"], tr["false_positives"], tr["misses"]]],
                    notes="MOTA, IDF1: py-motmetrics; HOTA: motrics (TrackEval's HOTA) on 30 px boxes about each "
                          "head and track. Scored heads lie within 4 um of focus and outside the pipette.")
    dt = depth_over_time(args.cells, args.frames // 2, models)
    t_depth = Table("Depth of a motile target over time", ["mean abs error (um)", "per-frame argmax", "Bayes filter", "frames"], [
        ["vs the head's depth in the frame", f"{dt['argmax_mean_abs_error_um']:.3f}", f"{dt['bayes_mean_abs_error_um']:.3f}",
         dt["frames"]],
        ["vs the depth of the swimming path", f"{dt['path_argmax_mean_abs_error_um']:.3f}",
         f"{dt['path_bayes_mean_abs_error_um']:.3f}", dt["path_frames"]]])
    dff = {mot: dff_vs_net(args.cells, models, mot) for mot in ("immotile", "motile")}
    t_dff = Table("Depth from focus vs the network", ["cells", "network mean abs error (um)",
                                                      "depth-from-focus mean abs error (um)", "DFF reliable peaks"],
                  [[mot, f"{r['net_mean_abs_error_um']:.2f}", f"{r['dff_mean_abs_error_um']:.2f}", r["dff_reliable_peaks"]]
                   for mot, r in dff.items()])
    for t in (t_track, t_depth, t_dff):
        print(f"\n{t.caption}\n| " + " | ".join(t.columns) + " |\n|" + "---|" * len(t.columns))
        for row in t.rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
    save_result(Result("perception_quality", "Perception quality on the twin (tracking, depth over time, DFF)",
                       [t_track, t_depth, t_dff], section="perception on video",
                       data={"args": vars(args), "tracking": tr, "depth_over_time": dt, "dff_vs_net": dff}))


if __name__ == "__main__":
    main()
