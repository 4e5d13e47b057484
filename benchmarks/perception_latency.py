"""Perception runtime at the camera's rate: capture-to-estimate latency, frames processed and dropped, and
the median of each stage, with the shipped models (frames rendered first, then streamed at 40 fps to the
perception worker; `micromanip bench perception` prints the same for one region). Prints a table and
saves ``docs/results/perception_latency.json``.

    .venv/bin/python benchmarks/perception_latency.py [--frames 200] [--runs 2] [--full-frame-frames 60]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.bench_perception import perception_benchmark
from app.config import load_rig_config
from result_store import Headline, Result, Table, save_result

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "configs" / "sim.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--runs", type=int, default=2, help="runs at the controller's region")
    ap.add_argument("--full-frame-frames", type=int, default=60, help="frames of the full-sensor run (0: none)")
    args = ap.parse_args()
    roi = load_rig_config(RIG).control.trials.roi_px
    runs = [perception_benchmark(RIG, args.frames, roi) for _ in range(args.runs)]
    if args.full_frame_frames:
        runs.append(perception_benchmark(RIG, args.full_frame_frames, None))
    columns = ["region", "processed / streamed", "dropped", "fps", "latency median ms", "latency p99 ms",
               "stages (median ms)"]
    rows = []
    for r in runs:
        stages = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in r["stages_ms"].items())
        rows.append([f"{r['roi_px'][0]}x{r['roi_px'][1]}", f"{r['processed']} / {r['frames']}", str(r["dropped_frames"]),
                     f"{r['fps']:.1f}", f"{r['latency_ms']['median']:.1f}", f"{r['latency_ms']['p99']:.1f}", stages])
    print("| " + " | ".join(columns) + " |\n" + "\n".join("| " + " | ".join(row) + " |" for row in rows))
    roi_runs = runs[: args.runs]
    med = [r["latency_ms"]["median"] for r in roi_runs]
    p99 = [r["latency_ms"]["p99"] for r in roi_runs]
    dropped = sum(r["dropped_frames"] for r in roi_runs)
    span = lambda v: f"{min(v):.0f}-{max(v):.0f}" if len(v) > 1 else f"{v[0]:.0f}"  # noqa: E731
    save_result(Result(
        name="perception_latency", title="Perception runtime at 40 frames/s", section="perception runtime",
        tables=[Table("Shipped models, segmentation at half scale; the first rows at the controller's region",
                      columns, rows, f"{args.runs} runs at the controller's region, then the full sensor.")],
        headlines=[Headline(f"perception at the controller ROI, 40 fps stream ({args.runs} runs)",
                            f"median {span(med)} ms, p99 {span(p99)} ms, {dropped} of "
                            f"{args.frames * args.runs} dropped", "p99 <= 25 ms")],
        data={"runs": runs}))


if __name__ == "__main__":
    main()
