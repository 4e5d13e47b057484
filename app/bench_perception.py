"""``micromanip bench perception``: render simulated frames first (rendering is the simulator's cost, not
perception's), then stream them to the perception worker with the shipped models."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drivers.frame import Frame
from perception.runtime.bench import run_benchmark


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
    result["seg_pixel_um"] = pipeline.models.seg_pixel_um
    return result
