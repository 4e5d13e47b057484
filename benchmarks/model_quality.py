"""Accuracy of the shipped perception models on data they never saw: simulated sperm and tiles generated
with seeds outside every training run, and the held-out split of the real OTMR images (skipped when
the shared data are absent). Prints a table and saves ``docs/results/model_quality.json``.

    .venv/bin/python benchmarks/model_quality.py [--otmr ../shared/data/otmr_2025] [--n-sperm 150 --n-tiles 60]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from perception.checkpoints import load_weights
from perception.training.evaluate import evaluate, true_height_top1
from result_store import Headline, Result, Table, save_result
from sim.datasets import DepthDatasetSpec, generate_depth_dataset
from sim.seg_dataset import generate_seg_dataset

ROOT = Path(__file__).resolve().parent.parent
DEPTH_SEED, SEG_SEED = 777, 4242  # no training set uses these seeds (`make weights` uses seed 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--otmr", type=Path, default=ROOT.parent / "shared" / "data" / "otmr_2025")
    ap.add_argument("--n-sperm", type=int, default=150)
    ap.add_argument("--n-tiles", type=int, default=60)
    args = ap.parse_args()
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        depth_dir, seg_dir = Path(tmp) / "depth", Path(tmp) / "seg"
        generate_depth_dataset(DepthDatasetSpec(n_sperm=args.n_sperm, seed=DEPTH_SEED), depth_dir)
        d = data["depth"] = evaluate("depth", depth_dir, split="all")
        offset_um = load_weights("depth_classifier", "depth")["meta"].get("zero_offset_um", 0.0)
        ceiling = d["true_height_top1"] = true_height_top1(depth_dir, "all", offset_um)
        rows.append(["depth_classifier (9 classes, -2..+2 um)",
                     f"simulated z-stacks, {args.n_sperm} new sperm (seed {DEPTH_SEED}), {d['n']} crops",
                     "top-1 / top-3 / mean abs error (a reader of the true height: top-1)",
                     f"{d['top1']:.1%} / {d['top3']:.1%} / {d['mean_abs_error_um']:.3f} um ({ceiling['all']:.1%}; "
                     f"immotile cells {ceiling['immotile']:.1%})",
                     ">= 85% / 97% / <= 0.14 um (paper: 83.5% / 96.9% / 0.14 um)"])
        generate_seg_dataset(args.n_tiles, SEG_SEED, seg_dir)
        s = data["seg"] = evaluate("seg", seg_dir, split="all")
        rows.append(["unext_seg", f"simulated tiles, {s['n']} new (seed {SEG_SEED})",
                     "IoU head / flagellum / pipette; head centroid error",
                     f"{s['iou_head']:.2f} / {s['iou_flagellum']:.2f} / {s['iou_pipette']:.2f}; "
                     f"{s['centroid_error_px']:.2f} px", "-"])
    if args.otmr.is_dir():
        p = data["otmr_pose"] = evaluate("otmr-pose", args.otmr)
        rows.append(["otmr_pose", f"real OTMR images, held-out stratified split ({p['n']})",
                     "both angles / pitch / roll", f"{p['accuracy']:.4f} / {p['pitch_accuracy']:.3f} / "
                     f"{p['roll_accuracy']:.3f}", ">= 0.95 (published 0.88)"])
        z = data["otmr_depth"] = evaluate("otmr-depth", args.otmr)
        rows.append(["otmr_depth", f"same split ({z['n']})", "R^2 / RMSE (standardised)",
                     f"{z['r2']:.3f} / {z['rmse']:.3f}", ">= 0.99 (published 0.983)"])
    columns = ["model", "data (never trained on)", "metric", "measured", "goal"]
    print("| " + " | ".join(columns) + " |\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows))
    headlines = [Headline(f"sperm depth, {args.n_sperm} unseen simulated sperm (9 classes, -2..+2 um)",
                          f"{d['top1']:.1%} top-1, {d['top3']:.1%} top-3, {d['mean_abs_error_um']:.3f} um mean error "
                          f"(labels' noise: a reader of the true height scores {ceiling['all']:.1%} top-1)",
                          ">= 85% / 97% / 0.14 um")]
    if "otmr_pose" in data:
        headlines += [Headline("OTMR pose / depth (real images, held-out stratified split)",
                               f"{data['otmr_pose']['accuracy']:.4f} both angles / R^2 {data['otmr_depth']['r2']:.3f}",
                               ">= 0.95 / >= 0.99")]
    notes = ("A reader of the true height labels each crop with the class nearest to the head's true height "
             "plus the depth weights' zero_offset_um; the labels' own noise caps its top-1 "
             "(perception/training/evaluate.py::true_height_top1, docs/sim.md). ")
    notes += ("The OTMR split is stratified by pose over frames of the same videos, so its test images are close "
             "to training images; images from other videos are the real test." if "otmr_pose" in data else
             f"OTMR rows not run: {args.otmr} is absent.")
    save_result(Result(
        name="model_quality", title="Shipped models on data they never saw", section="perception models",
        order=1, tables=[Table("Shipped weights in perception/weights/ (each has a model card)", columns, rows,
                               notes)],
        headlines=headlines,
        data={k: {m: v for m, v in d.items() if not isinstance(v, list)} for k, d in data.items()}))


if __name__ == "__main__":
    main()
