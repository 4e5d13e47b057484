"""Speed of ``micromanip track``: frames per second over a 698 x 528 recording (the size of the clinical
videos, about 0.38 um/px) on the machine's cores, end to end (decoding, segmentation at the network's own
pixel size, head instances, tracking), with the time of each stage; and the segmentation network alone at
coarser network pixel sizes, to show which scale a network would need for the goal (>= 30 frames/s).

    .venv/bin/python benchmarks/track_speed.py [--input VIDEO_OR_FOLDER --um-per-px 0.38 --frames 150]

Without --input, a 698 x 528 AVI is made from the digital twin (rendered at the twin's 0.1465 um/px and
labelled as 0.38 um/px: the content only sets how many blobs are tracked; the sizes set the cost).
Saves docs/results/track_speed.json (benchmarks/result_store.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from drivers.recording import open_recording
from perception.runtime.backend import load_backend
from perception.runtime.pipeline import Models
from perception.runtime.seg_input import MULTIPLE as SEG_INPUT_MULTIPLE_PX
from perception.runtime.video_tracking import RecordingTracker, recording_config
from result_store import Headline, Result, Table, save_result  # benchmarks/ (this script's folder)

ROOT = Path(__file__).resolve().parent.parent
SIZE = (698, 528)  # (w, h)


def twin_clip(out: Path, n: int) -> Path:
    from app.config import load_rig_config
    from app.rig import build_rig
    from app.trials import trial_config
    from drivers.interfaces import Roi

    config, settings = trial_config(load_rig_config(ROOT / "configs" / "sim.yaml"), "motile", "lockstep")
    path = out / "twin_698x528.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE, isColor=True)
    with build_rig(config, seed=11) as rig:
        rig.camera.set_roi(Roi(600, 380, *SIZE))
        rig.focus.move_to_um(settings.focus_start_um).wait(5)
        for _ in range(n):
            writer.write(cv2.cvtColor(rig.frames.snap().pixels, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def end_to_end(path: Path, um_per_px: float, fps: float | None, n: int, threads: int) -> dict:
    cfg = recording_config(inference_threads=threads)
    models = Models.load(cfg)
    with open_recording(path) as rec:
        rate = fps or rec.fps or 30.0
        tracker = RecordingTracker(models, um_per_px, rate, rec.shape, cfg)
        frames = rec.frames(0, n + 1)
        tracker.step(0, next(frames))  # warm-up: onnxruntime plans this input size
        stages: dict[str, list[float]] = {}
        decode_ms, count = [], 0
        t0, cpu0 = time.perf_counter(), time.process_time()
        t_read = time.perf_counter()
        for i, pixels in enumerate(frames, start=1):
            decode_ms.append((time.perf_counter() - t_read) * 1e3)
            tracker.step(i, pixels)
            for k, v in tracker.last_timings_ms.items():
                stages.setdefault(k, []).append(v)
            count += 1
            t_read = time.perf_counter()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        shape = rec.shape
    s = tracker.pipeline.seg_scale(um_per_px)
    net = [round(shape[1] * s), round(shape[0] * s)]
    padded = [-(-v // SEG_INPUT_MULTIPLE_PX) * SEG_INPUT_MULTIPLE_PX for v in net]
    return {"frames": count, "wall_s": wall, "fps": count / wall, "cpu_s_per_frame": cpu / count,
            # the rate this much CPU work allows on two otherwise idle cores (a loaded machine's wall time is not)
            "fps_two_idle_cores": 2 * count / cpu, "frame_px": [shape[1], shape[0]],
            "um_per_px": um_per_px, "network_pixel_um": models.seg_pixel_um, "network_input_px": padded,
            "decode_ms": float(np.median(decode_ms)),
            "stages_ms": {k.removesuffix("_ms"): float(np.median(v)) for k, v in stages.items()}}


def network_alone(frame_px: tuple[int, int], um_per_px: float, threads: int, reps: int) -> list[dict]:
    """UNeXt inference time (wall, and CPU time spread over two cores) for the frame resampled to a range
    of network pixel sizes."""
    seg, _ = load_backend("unext_seg", "onnx", (1, 256, 256), threads=threads)
    rows = []
    for net_um in (0.38, 0.45, 0.5, 0.55, 0.7):
        s = um_per_px / net_um
        w, h = (-(-round(v * s) // SEG_INPUT_MULTIPLE_PX) * SEG_INPUT_MULTIPLE_PX for v in frame_px)
        x = np.random.default_rng(0).normal(size=(1, 1, h, w)).astype(np.float32)
        seg(x)
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(reps):
            seg(x)
        ms = (time.perf_counter() - t) / reps * 1e3
        cpu_ms = (time.process_time() - cpu) / reps * 1e3
        rows.append({"network_pixel_um": net_um, "input_px": [w, h], "ms": ms, "cpu_ms": cpu_ms,
                     "max_fps": 1e3 / ms, "max_fps_two_idle_cores": 2e3 / cpu_ms})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", type=Path, help="recording (default: a 698 x 528 twin clip made here)")
    ap.add_argument("--um-per-px", type=float, default=0.38)
    ap.add_argument("--fps", type=float)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    ap.add_argument("--note", default="", help="how loaded the machine was, for the record")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.input or twin_clip(Path(tmp), args.frames + 1)
        r = end_to_end(path, args.um_per_px, args.fps, args.frames, args.threads)
    net = network_alone(tuple(r["frame_px"]), args.um_per_px, args.threads, 20)
    source = str(args.input) if args.input else "twin clip, 698 x 528 AVI"
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages_ms"].items())
    t1 = Table(f"`micromanip track` speed, {source}, {args.threads} onnxruntime threads",
               ["frame", "um/px", "network um/px", "network input", "frames/s", "CPU s per frame",
                "frames/s that CPU allows on 2 idle cores", "decode ms", "stages (median ms)"],
               [[f"{r['frame_px'][0]}x{r['frame_px'][1]}", f"{r['um_per_px']:g}", f"{r['network_pixel_um']:.3f}",
                 f"{r['network_input_px'][0]}x{r['network_input_px'][1]}", f"{r['fps']:.1f}",
                 f"{r['cpu_s_per_frame']:.3f}", f"{r['fps_two_idle_cores']:.1f}", f"{r['decode_ms']:.1f}", stages]],
               notes=args.note)
    t2 = Table("UNeXt alone on that frame at coarser network pixel sizes",
               ["network um/px", "input", "ms", "CPU ms", "frames/s (network only)", "frames/s that CPU allows on 2 idle cores"],
               [[f"{n['network_pixel_um']:g}", f"{n['input_px'][0]}x{n['input_px'][1]}", f"{n['ms']:.1f}",
                 f"{n['cpu_ms']:.1f}", f"{n['max_fps']:.1f}", f"{n['max_fps_two_idle_cores']:.1f}"] for n in net])
    for t in (t1, t2):
        print(f"\n{t.caption}\n| " + " | ".join(t.columns) + " |\n|" + "---|" * len(t.columns))
        for row in t.rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
    save_result(Result("track_speed", "Tracking a recording: frames per second", [t1, t2], section="perception on video",
                       headlines=[Headline(f"`micromanip track`, {r['frame_px'][0]}x{r['frame_px'][1]} at "
                                           f"{r['um_per_px']:g} um/px", f"{r['fps']:.1f} frames/s ({r['fps_two_idle_cores']:.1f} "
                                           "by CPU time on 2 idle cores)", ">= 30 frames/s")],
                       data={"args": {k: str(v) for k, v in vars(args).items()}, "end_to_end": r, "network": net}))


if __name__ == "__main__":
    main()
