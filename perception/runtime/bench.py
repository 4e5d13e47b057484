"""Perception benchmark: stream given frames to the worker at the camera's frame rate on a real clock
(so dropped frames and queueing are real) and measure capture-to-estimate latency, fps, stage medians."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from drivers.frame import Frame


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
            # one sleep per frame, as a camera's driver thread waits: polling would take the GIL from the
            # worker every few milliseconds and add that to the latency measured
            wait = t0 + i * period - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
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
