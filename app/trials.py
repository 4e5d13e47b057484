"""Campaigns of closed-loop aspiration trials on the simulated rig, in lockstep time, with per-trial
seeds, logged to SQLite, summarised as a table and JSON. Where the trials run (a local process pool or a
Ray cluster) is :mod:`app.campaign_engine`'s business; a sweep of conditions is :mod:`app.sweep`'s."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import binomtest

from app.trial_log import now_iso
from calibration.miscalibration import Miscalibration

log = logging.getLogger(__name__)
DepthSourceName = Literal["net", "oracle", "dff", "none"]


class TrialSettings(BaseModel):
    """The simulated trial's set-up (rig file section ``control.trials``)."""

    model_config = ConfigDict(extra="forbid")

    roi_px: tuple[int, int, int, int] = (640, 408, 640, 384)
    n_sperm: int = Field(14, ge=1)
    field_half_size_um: tuple[float, float] = (70.0, 50.0)
    focus_start_um: float = 3.5
    max_trial_s: float = Field(15.0, gt=0)
    finish_attempt_s: float = Field(4.0, ge=0, description="an attempt aspirating or verifying when the time"
                                    " limit comes may finish within this much longer (the cell may be inside)")
    perception_latency_s: float = Field(0.012, ge=0, description="modelled compute time per frame")
    xy_source: Literal["net", "oracle"] = "net"
    miscalibration: Miscalibration = Field(default_factory=Miscalibration, description="errors added to the"
                                           " transforms the controller uses (robustness sweeps)")


@dataclass(frozen=True)
class TrialSpec:
    index: int
    seed: int
    rig: str
    motility: Literal["motile", "immotile"]
    depth_source: DepthSourceName
    # the rig file's mapping with a sweep condition's changes, shipped with the trial (a cluster node may
    # not have the file); None: read the file
    rig_data: dict[str, Any] | None = field(default=None, compare=False)


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a success proportion (scipy's); (0, 1) before any trial."""
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(successes, n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


_MODELS: dict[str, Any] = {}


def _models(xy: str, depth: str, pcfg):
    """The models ``pcfg`` names (``control.weights``), loaded once per worker process."""
    from perception.runtime.backend import load_backend
    from perception.runtime.pipeline import Models

    key = f"{xy}:{depth}:{pcfg.seg_weights}:{pcfg.depth_weights}:{pcfg.backend}:{pcfg.inference_threads}"
    if key not in _MODELS:
        if xy == "oracle":
            dnet = load_backend(pcfg.depth_weights, pcfg.backend, (1, 96, 96), threads=pcfg.inference_threads)[0] \
                if depth == "net" else None
            _MODELS[key] = Models(seg=lambda x: None, depth=dnet)
        else:
            _MODELS[key] = Models.load(pcfg)
    return _MODELS[key]


def trial_rig_config(spec: TrialSpec):
    """The trial's rig: the shipped mapping (a sweep condition's) or the file."""
    from app.config import load_rig_config, parse_rig_config

    if spec.rig_data is None:
        return load_rig_config(spec.rig)
    return parse_rig_config(spec.rig_data, source=Path(spec.rig))


def rig_weights(config) -> dict[str, str]:
    """``control.weights``: the segmentation and depth models by shipped name or file."""
    given = config.control.get("weights") or {}
    return {"seg_weights": given.get("seg", "unext_seg"), "depth_weights": given.get("depth", "depth_classifier")}


def nominal_transforms(rig):
    """Camera<->stage and manipulator->lab transforms from the rig's nominal geometry (no calibration run):
    the twin's manipulator mounting, also when a rehearsed driver moves it."""
    from calibration.transforms import CameraStageTransform, ManipulatorTransform

    cam = CameraStageTransform(rig.frames.pixel_size_um, rig.camera.sensor_shape[1], rig.camera.sensor_shape[0])
    ms = getattr(rig.world.manipulator, "settings", None) if rig.world is not None else None
    offset = np.array(ms.mount_origin_lab_um) - np.array(ms.home_um) if ms is not None else np.zeros(3)
    return cam, ManipulatorTransform(np.eye(3), offset)


def trial_config(config, motility: str, clock: str):
    """The rig config with the trial's scene (cell count, field, motility mix) and the trial settings."""
    settings = TrialSettings.model_validate(config.control.get("trials", {}))
    mix = config.scene.get("motility_mix") or (
        {"rapid_progressive": 0.7, "slow_progressive": 0.3} if motility == "motile" else {"immotile": 1.0})
    scene = {**config.scene, "n_sperm": settings.n_sperm, "field_half_size_um": settings.field_half_size_um,
             "motility_mix": mix}
    return config.model_copy(update={"scene": scene, "clock": clock}), settings


def reject_failed_targets(controller, pipeline) -> None:
    """A cell the controller gave up on is not offered again by the perception's target policy."""
    from control.states import State

    def on_transition(tr) -> None:
        if tr.dst == State.RETARGET and tr.target_id is not None:
            pipeline.reject_target(tr.target_id)

    controller.transitioned.connect(on_transition)


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """One trial from a fresh simulated rig; the outcome is judged from the simulator's ground truth."""
    import torch

    from app.rig import build_rig
    from calibration.miscalibration import describe
    from control.aspiration import AspirationController, ControllerConfig, NetDepth, NoDepth
    from control.depth_sources import DffDepth, OracleDepth, truth_for_target
    from control.states import State
    from drivers.interfaces import Roi
    from perception.runtime.oracle import OracleSegPipeline
    from perception.runtime.pipeline import PerceptionConfig, PerceptionPipeline

    torch.set_num_threads(1)
    config = trial_rig_config(spec)
    config, settings = trial_config(config, spec.motility, "real" if config.rehearsal else "lockstep")
    started, t_wall = now_iso(), time.perf_counter()
    with build_rig(config, seed=spec.seed) as rig:
        rig.camera.set_roi(Roi(*settings.roi_px))
        sim_camera = next((t for t in rig.twins if t.kind == "camera"), rig.camera)
        sim_camera.with_masks = settings.xy_source == "oracle"
        rig.focus.move_to_um(settings.focus_start_um).wait(5)
        cam_tf, manip_tf = settings.miscalibration.apply(*nominal_transforms(rig))
        # one inference thread: the worker processes already keep every core busy, and a second thread costs
        # ~40% more CPU per inference for a small latency gain nobody waits for in lockstep time
        pcfg = PerceptionConfig(roi_px=(settings.roi_px[2], settings.roi_px[3]), inference_threads=1,
                                **rig_weights(config),
                                depth_source="net" if spec.depth_source == "net" else "none",
                                want_motility=("rapid_progressive", "slow_progressive") if spec.motility == "motile"
                                else ("immotile", "non_progressive"))
        models = _models(settings.xy_source, spec.depth_source, pcfg)
        pipe_cls = OracleSegPipeline if settings.xy_source == "oracle" else PerceptionPipeline
        pipeline = pipe_cls(models, pcfg, sensor_shape=rig.camera.sensor_shape, clock=rig.clock.now)
        depth = {"net": NetDepth, "none": NoDepth, "oracle": OracleDepth}.get(spec.depth_source)
        depth_source = depth() if depth else DffDepth(rig.focus, rig.frames)
        ctl_cfg = ControllerConfig()
        ctl = AspirationController(rig.stage, rig.manipulator, rig.pump, rig.focus, rig.clock, cam_tf, manip_tf,
                                   depth_source, ctl_cfg)
        record: dict[str, Any] = {"depth_error_um": None, "truth_id": None}
        last_est = {}

        def on_transition(tr) -> None:
            if tr.dst == State.ASPIRATING and last_est.get("est") is not None:
                cell = truth_for_target(last_est["est"])
                if cell is not None:
                    record["truth_id"] = cell.id
                    record["depth_error_um"] = float(rig.world.pipette_pose().tip_um[2] - cell.head_um[2])

        ctl.transitioned.connect(on_transition)
        reject_failed_targets(ctl, pipeline)
        t0 = rig.clock.now()
        ctl.start()
        frames = 0
        while not ctl.done and within_time_limit(rig.clock.now() - t0, ctl.state, settings):
            frame = rig.frames.snap()
            est = pipeline.process(frame)
            last_est["est"] = est
            rig.clock.sleep(settings.perception_latency_s)
            ctl.step(est)
            frames += 1
        if not ctl.done:
            ctl.abort("trial time limit")
            ctl.failure_mode = ctl.failure_mode or "timeout"
        duration = rig.clock.now() - t0
        outcome, mode = _judge(rig, ctl, record, settings)
    return {
        "index": spec.index, "seed": spec.seed, "rig": spec.rig, "start": started, "end": now_iso(),
        "outcome": outcome, "failure_mode": mode, "target_id": ctl.target_id, "depth_error_um": record["depth_error_um"],
        "duration_s": duration, "frames": frames, "wall_s": time.perf_counter() - t_wall,
        "events": [{"t_s": e.t_s - t0, "src": e.src.value, "dst": e.dst.value, "reason": e.reason,
                    "target_id": e.target_id} for e in ctl.events],
        # what the controller ran with: the calibration it used (nominal geometry, any errors added) and its
        # parameters, recorded with the campaign
        "setup": {"calibration": {"source": "nominal", **describe(cam_tf, manip_tf),
                                  "miscalibration": settings.miscalibration.model_dump()},
                  "controller": {"trials": settings.model_dump(), "perception": pcfg.model_dump(),
                                 "controller": dataclasses.asdict(ctl_cfg)}},
    }


def within_time_limit(elapsed_s: float, state, settings: TrialSettings) -> bool:
    """The time limit stops new attempts, not one whose pump has started: aborting then would count a
    cell being drawn in, or already inside and being verified, as a failure."""
    from control.states import State

    if elapsed_s < settings.max_trial_s:
        return True
    return state in (State.ASPIRATING, State.VERIFYING) and elapsed_s < settings.max_trial_s + settings.finish_attempt_s


def _judge(rig, ctl, record, settings: TrialSettings) -> tuple[str, str | None]:
    """Success as in the paper: a cell retained inside the pipette within the field of view."""
    from control.states import State

    sensor_w = rig.camera.sensor_shape[1] * rig.frames.pixel_size_um
    sx, _ = rig.world.stage_xy_um()
    captured = [c for c in rig.world.scene.sperm if c.captured]
    inside_fov = [c for c in captured if abs(c.head_center_um()[0] - sx) <= sensor_w / 2]
    if ctl.state == State.SUCCESS:
        if inside_fov:
            return "success", None
        return "failed", "swept_out" if captured else "false_success"
    if inside_fov and ctl.state != State.FAULT:
        return "failed", ctl.failure_mode or "unverified"
    if captured:
        return "failed", "swept_out"
    return "failed", ctl.failure_mode or "unknown"


def _worker_init() -> None:
    import cv2

    from sim import workers

    logging.getLogger().setLevel(logging.WARNING)
    # each worker process already has a core of its own: no side-job thread, and OpenCV's own thread pool
    # only adds hand-offs (measured 57.0 -> 55.3 ms CPU per trial frame)
    workers.set_threaded(False)
    cv2.setNumThreads(1)


def run_campaign(rig: Path, n: int, seed: int, motility: str, depth_source: str, db: Path | None,
                 workers: int = 2, progress: bool = True, resume: bool = False, engine: str = "local",
                 ray_address: str | None = None) -> dict[str, Any]:
    """Run (``resume``: continue) a campaign on the engine named (``local`` process pool or ``ray``)."""
    from app.campaign_engine import make_engine, run_plans
    from app.config import load_rig_config
    from app.sweep import campaign_plan
    from drivers.errors import MicromanipError

    if load_rig_config(rig).rehearsal:
        if engine == "ray":
            raise MicromanipError("a rehearsal rig runs its protocol servers on this machine: use --engine local")
        workers = 1  # one set of protocol servers (the uMp's UDP port, pylon's emulated camera) per machine
    plan = campaign_plan(Path(rig), n, seed, motility, depth_source)
    runner = make_engine(engine, workers, ray_address)
    try:
        return run_plans([plan], runner, db, resume=resume, progress=progress,
                         desc=f"trials {motility}/{depth_source}")[plan.key]
    finally:
        runner.close()


def summarise(results: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    n = len(results)
    ok = sum(r["outcome"] == "success" for r in results)
    lo, hi = wilson_interval(ok, n)
    times = [r["duration_s"] for r in results if r["outcome"] == "success"]
    depth_errors = [abs(r["depth_error_um"]) for r in results if r.get("depth_error_um") is not None]
    return {"n": n, "success_rate": ok / n if n else 0.0, "ci95": [lo, hi],
            "errors": sum(r["outcome"] == "error" for r in results),
            "failures": dict(Counter(r["failure_mode"] for r in results if r["outcome"] != "success")),
            "median_time_s": float(np.median(times)) if times else None,
            "median_abs_depth_error_um": float(np.median(depth_errors)) if depth_errors else None, "wall_s": wall_s}


def format_table(summary: dict[str, Any], title: str) -> str:
    lo, hi = summary["ci95"]
    t = summary["median_time_s"]
    lines = [f"{title}: {summary['n']} trials in {summary['wall_s']:.0f} s wall",
             "| success | 95% CI (Wilson) | median time to aspirate | median abs depth error | failures |",
             "|---|---|---|---|---|",
             f"| {summary['success_rate']:.0%} | {lo:.0%} - {hi:.0%} | {f'{t:.1f} s' if t else '-'} | "
             f"{summary['median_abs_depth_error_um'] if summary['median_abs_depth_error_um'] is None else round(summary['median_abs_depth_error_um'], 2)} um | "
             f"{summary['failures'] or '-'} |"]
    return "\n".join(lines)


__all__ = ["run_campaign", "run_trial", "within_time_limit", "reject_failed_targets", "summarise", "format_table",
           "wilson_interval", "TrialSpec", "trial_rig_config"]
