"""``micromanip bench perception``: take the frames first (rendering is the simulator's cost, not
perception's; a replay rig reads its recording), then stream them to the perception worker with the
shipped models at the camera's frame rate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drivers.frame import Frame
from perception.runtime.bench import run_benchmark


def render_frames(rig_path: Path, n: int, roi: tuple[int, int, int, int] | None,
                  seed: int = 0) -> tuple[list[Frame], float]:
    """``n`` frames of the rig's camera and its frame rate: a perception-only rig's (a recording: whole
    frames in order, ``roi`` ignored), else the twin's at the trial's start."""
    from app.config import load_rig_config
    from app.rig import build_rig
    from app.trials import trial_config
    from drivers.interfaces import Roi

    config, settings = trial_config(load_rig_config(rig_path), "motile", "lockstep")
    with build_rig(config, seed=seed) as rig:
        if not config.perception_only:
            if roi is not None:
                rig.camera.set_roi(Roi(*roi))
            rig.focus.move_to_um(settings.focus_start_um).wait(5)
        return [rig.frames.snap() for _ in range(n)], rig.camera.frame_rate_hz


def perception_benchmark(rig_path: Path, n_frames: int, roi: tuple[int, int, int, int] | None,
                         camera_fps: float | None = None) -> dict[str, Any]:
    """``camera_fps``: the streaming rate; default the rig camera's frame rate."""
    from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline

    frames, rate = render_frames(rig_path, n_frames, roi)
    camera_fps = camera_fps or rate
    h, w = frames[0].pixels.shape
    cfg = PerceptionConfig(roi_px=(w, h))
    whole = frames[0].roi_offset_px == (0, 0)  # the camera's whole frame: its centre is the optical axis
    pipeline = PerceptionPipeline(Models.load(cfg), cfg, clock=time.perf_counter,
                                  **({"sensor_shape": (h, w)} if whole else {}))
    pipeline.process(frames[0])  # warm-up (onnxruntime session, caches)
    pipeline.tracker = None
    result = run_benchmark(frames, pipeline, camera_fps)
    result["roi_px"] = [w, h]
    result["seg_scale"] = pipeline.seg_scale(frames[0].pixel_size_um)
    result["camera_fps"] = camera_fps
    result["seg_pixel_um"] = pipeline.models.seg_pixel_um
    return result
