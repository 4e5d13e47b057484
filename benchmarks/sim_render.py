"""Digital-twin speed: rendered frames/s (640x480 ROI with 10 sperm + pipette, and full frame), and the
time to generate the paper-sized depth dataset (232 sperm x 9 planes). Prints a table and saves
``docs/results/sim_render.json``.

    .venv/bin/python benchmarks/sim_render.py [--frames 200] [--n-sperm 232] [--runs 3]
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
        rig.manipulator.move_by_um([-40, 0, -7]).wait(10)  # the tip stays above the safety floor
        # warm the kernel and spectrum caches: they fill as the cells change depth (the first 40 frames
        # render ~30% slower than the ones after)
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
    ap.add_argument("--runs", type=int, default=3, help="ROI measurements, each on a fresh rig")
    args = ap.parse_args()
    roi_fps = [fps(Roi(640, 360, 640, 480), {"n_sperm": 10, "field_half_size_um": [47, 35], "n_debris": 10},
                   args.frames) for _ in range(args.runs)]
    full_fps = fps(None, {"n_sperm": 14}, max(10, args.frames // 4))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_depth_dataset(DepthDatasetSpec(n_sperm=args.n_sperm, seed=0), Path(tmp))
        gen_s = time.perf_counter() - t0
    roi = "-".join(f"{f:.0f}" for f in (min(roi_fps), max(roi_fps))) if args.runs > 1 else f"{roi_fps[0]:.1f}"
    rows = [["render, 640x480 ROI, 10 sperm + pipette (frames/s)", f"{roi} ({args.runs} runs)", ">= 40"],
            ["render, full frame 1920x1200, 14 sperm + pipette (frames/s)", f"{full_fps:.1f}", "-"],
            [f"depth z-stacks, {args.n_sperm} sperm x 9 planes (operator protocol)", f"{gen_s:.1f} s", "-"]]
    table = Table("One process, lockstep clock, caches warmed by 60 frames first", ["measurement", "value", "goal"],
                  rows)
    print("\n".join(" | ".join(map(str, r)) for r in rows))
    save_result(Result(
        name="sim_render", title="Digital twin render speed", section="digital twin", tables=[table],
        headlines=[Headline("twin render, 640x480, 10 sperm + pipette", f"{roi} fps ({args.runs} runs)", ">= 40 fps")],
        data={"roi_fps": roi_fps, "full_frame_fps": full_fps, "depth_dataset_s": gen_s, "frames": args.frames}))


if __name__ == "__main__":
    main()
