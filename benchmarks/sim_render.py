"""Digital-twin speed: rendered frames/s (640x480 ROI with 10 sperm + pipette, and full frame), and the
time to generate the paper-sized depth dataset (232 sperm x 9 planes). Prints a table.

    .venv/bin/python benchmarks/sim_render.py [--frames 200] [--n-sperm 232]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from result_store import Headline, Result, Table, save_result  # benchmarks/ is on the path of a script run from it

from app.config import parse_rig_config
from app.rig import build_rig
from drivers.interfaces import Roi
from sim.datasets import DepthDatasetSpec, generate_depth_dataset

ROOT = Path(__file__).resolve().parent.parent


def fps(roi: Roi | None, scene: dict, frames: int) -> float:
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data["scene"] = {**data["scene"], **scene}
    with build_rig(parse_rig_config(data)) as rig:
        if roi:
            rig.camera.set_roi(roi)
        # bring the pipette tip into the ROI, near focus
        rig.manipulator.move_by_um([-40, 0, -8]).wait(10)
        # warm the kernel and spectrum caches: they fill as the cells change depth, and blocks of 40 frames
        # ran at 34-36 fps for frames 0-40 and 42-56 fps after (session 10)
        for _ in range(60):
            rig.frames.snap()
        t0 = time.perf_counter()
        for _ in range(frames):
            rig.frames.snap()
        return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--n-sperm", type=int, default=232)
    ap.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    args = ap.parse_args()
    roi_fps = fps(Roi(640, 360, 640, 480), {"n_sperm": 10, "field_half_size_um": [47, 35], "n_debris": 10},
                  args.frames)
    full_fps = fps(None, {"n_sperm": 14}, max(10, args.frames // 4))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_depth_dataset(DepthDatasetSpec(n_sperm=args.n_sperm, seed=0), Path(tmp))
        gen_s = time.perf_counter() - t0
    print("| measurement | value | goal |")
    print("|---|---|---|")
    print(f"| render fps, 640x480 ROI, 10 sperm + pipette | {roi_fps:.1f} | >= 40 |")
    print(f"| render fps, full frame 1920x1200, 14 sperm + pipette | {full_fps:.1f} | - |")
    print(f"| depth dataset, {args.n_sperm} sperm x 9 planes | {gen_s:.1f} s | - |")
    if not args.no_save:
        rows = [["render, 640x480 ROI, 10 sperm + pipette", f"{roi_fps:.1f} frames/s", ">= 40 frames/s"],
                ["render, full frame 1920x1200, 14 sperm + pipette", f"{full_fps:.1f} frames/s", "-"],
                [f"depth z-stacks, {args.n_sperm} sperm x 9 planes (operator protocol)", f"{gen_s:.0f} s", "-"]]
        save_result(Result(name="sim_render", title="Digital-twin speed", section="digital twin", order=10,
                           tables=[Table(caption=f"{args.frames} frames after 60 warm-up frames",
                                         columns=["measurement", "value", "goal"], rows=rows)],
                           headlines=[Headline("twin render, 640x480 ROI, 10 sperm + pipette",
                                               f"{roi_fps:.1f} frames/s", ">= 40 frames/s")],
                           data={"roi_fps": roi_fps, "full_fps": full_fps, "depth_set_s": gen_s}))


if __name__ == "__main__":
    main()
