"""Perception benchmark on simulated frames: capture-to-estimate latency, fps, per-stage medians.

Frames are rendered first (rendering is the simulator's cost, not perception's), then streamed to the
perception worker at the camera's frame rate on a real clock, so dropped frames and queueing are real.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from drivers.frame import Frame


def render_frames(rig_path: Path, n: int, roi: tuple[int, int, int, int] | None, seed: int = 0) -> list[Frame]:
    from app.config import load_rig_config
    from app.rig import build_rig
    from app.trials import trial_config
    from drivers.interfaces import Roi

    config, settings = trial_config(load_rig_config(rig_path), "motile", "lockstep")
    with build_rig(config, seed=seed) as rig:
        if roi is not None:
            rig.camera.set_roi(Roi(*roi))
        rig.focus.move_to_um(settings.focus_start_um).wait(5)
        return [rig.frames.snap() for _ in range(n)]


def run_benchmark(frames: list[Frame], pipeline, fps: float) -> dict[str, Any]:
    from perception.runtime.worker import PerceptionWorker

    worker = PerceptionWorker(pipeline).start()
    latencies, stages = [], {}
    done = []

    def on_estimate(est) -> None:
        done.append(time.perf_counter())
        latencies.append((est.finish_time_s - est.capture_time_s) * 1e3)
        for k, v in est.timings_ms.items():
            stages.setdefault(k, []).append(v)

    worker.estimate_ready.connect(on_estimate)
    period = 1.0 / fps
    t0 = time.perf_counter()
    try:
        for i, f in enumerate(frames):
            target = t0 + i * period
            while (wait := target - time.perf_counter()) > 0:
                time.sleep(min(wait, 0.002))
            # re-stamp: capture time is "now" on the benchmark's clock
            worker.submit(Frame(f.pixels, f.frame_id, time.perf_counter(), f.pixel_size_um, f.stage_xy_um,
                                f.focus_z_um, f.exposure_ms, f.roi_offset_px, f.truth))
        deadline = time.perf_counter() + 10
        while worker.processed_frames + worker.dropped_frames + worker.rejected_frames < len(frames) and \
                time.perf_counter() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    span = (done[-1] - t0) if done else float("nan")
    return {
        "frames": len(frames), "processed": worker.processed_frames, "dropped_frames": worker.dropped_frames,
        "fps": worker.processed_frames / span if done else 0.0,
        "latency_ms": {"median": float(np.median(latencies)), "p99": float(np.percentile(latencies, 99))},
        "stages_ms": {k: float(np.median(v)) for k, v in stages.items()},
    }


def perception_benchmark(rig_path: Path, n_frames: int, roi: tuple[int, int, int, int] | None,
                         camera_fps: float = 40.0) -> dict[str, Any]:
    from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline

    frames = render_frames(rig_path, n_frames, roi)
    h, w = frames[0].pixels.shape
    cfg = PerceptionConfig(roi_px=(w, h))
    pipeline = PerceptionPipeline(Models.load(cfg), cfg, clock=time.perf_counter)
    pipeline.process(frames[0])  # warm-up (onnxruntime session, caches)
    pipeline.tracker = None
    result = run_benchmark(frames, pipeline, camera_fps)
    result["roi_px"] = [w, h]
    result["seg_scale"] = cfg.seg_scale or pipeline.models.seg_scale
    return result
