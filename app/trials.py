"""Campaigns of closed-loop aspiration trials on the simulated rig, in lockstep time, in parallel
processes with per-trial seeds, logged to SQLite, summarised as a table and JSON."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.trial_log import TrialLog, now_iso

log = logging.getLogger(__name__)
DepthSourceName = Literal["net", "oracle", "dff", "none"]


class TrialSettings(BaseModel):
    """The simulated trial's set-up (rig file section ``control.trials``)."""

    model_config = ConfigDict(extra="forbid")

    roi_px: tuple[int, int, int, int] = (640, 408, 640, 384)
    n_sperm: int = Field(14, ge=1)
    field_half_size_um: tuple[float, float] = (70.0, 50.0)
    focus_start_um: float = Field(3.0, description="where the operator focuses for motile cells: the typical"
                                  " height of the swimmers bound to the floor")
    focus_start_immotile_um: float = Field(0.5, description="for immotile cells: the heads lying on the floor")
    focus_error_um: float = Field(0.5, ge=0, description="s.d. of the operator's focusing by eye (about half the"
                                  " depth of field)")
    tip_start_lab_um: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] = Field(
        ((15.0, 40.0), (-15.0, 15.0), (1.0, 5.0)), description="ranges of where the operator leaves the tip: x, y"
        " in the field of view and z above the focal plane, clear of the cells")
    max_trial_s: float = Field(15.0, gt=0)
    finish_attempt_s: float = Field(4.0, ge=0, description="an attempt aspirating or verifying when the time"
                                    " limit comes may finish within this much longer (the cell may be inside)")
    perception_latency_s: float = Field(0.012, ge=0, description="modelled compute time per frame")
    xy_source: Literal["net", "oracle"] = "net"


@dataclass(frozen=True)
class TrialSpec:
    index: int
    seed: int
    rig: str
    motility: Literal["motile", "immotile"]
    depth_source: DepthSourceName


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


_MODELS: dict[str, Any] = {}


def _models(xy: str, depth: str):
    """Shipped models, loaded once per worker process."""
    from perception.runtime.backend import load_backend
    from perception.runtime.pipeline import Models, PerceptionConfig

    key = f"{xy}:{depth}"
    if key not in _MODELS:
        # one inference thread: the worker processes already keep every core busy, and a second thread costs
        # ~40% more CPU per inference for a small latency gain nobody waits for in lockstep time
        cfg = PerceptionConfig(depth_source="net" if depth == "net" else "none", inference_threads=1)
        if xy == "oracle":
            dnet = load_backend(cfg.depth_weights, cfg.backend, (1, 96, 96), threads=cfg.inference_threads)[0] \
                if depth == "net" else None
            _MODELS[key] = Models(seg=lambda x: None, depth=dnet)
        else:
            _MODELS[key] = Models.load(cfg)
    return _MODELS[key]


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
    mix = {"rapid_progressive": 0.7, "slow_progressive": 0.3} if motility == "motile" else {"immotile": 1.0}
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

    from app.config import load_rig_config
    from app.rig import build_rig
    from control.aspiration import AspirationController, ControllerConfig, NetDepth, NoDepth
    from control.depth_sources import DffDepth, OracleDepth, truth_for_target
    from control.states import State
    from drivers.interfaces import Roi
    from perception.runtime.oracle import OracleSegPipeline
    from perception.runtime.pipeline import PerceptionConfig, PerceptionPipeline

    torch.set_num_threads(1)
    config = load_rig_config(spec.rig)
    config, settings = trial_config(config, spec.motility, "real" if config.rehearsal else "lockstep")
    started, t_wall = now_iso(), time.perf_counter()
    with build_rig(config, seed=spec.seed) as rig:
        rig.camera.set_roi(Roi(*settings.roi_px))
        sim_camera = next((t for t in rig.twins if t.kind == "camera"), rig.camera)
        sim_camera.with_masks = settings.xy_source == "oracle"
        cam_tf, manip_tf = nominal_transforms(rig)
        operator_setup(rig, manip_tf, settings, spec.motility, np.random.default_rng(spec.seed + 7))
        pcfg = PerceptionConfig(roi_px=(settings.roi_px[2], settings.roi_px[3]),
                                depth_source="net" if spec.depth_source == "net" else "none",
                                want_motility=("rapid_progressive", "slow_progressive") if spec.motility == "motile"
                                else ("immotile", "non_progressive"))
        models = _models(settings.xy_source, spec.depth_source)
        pipe_cls = OracleSegPipeline if settings.xy_source == "oracle" else PerceptionPipeline
        pipeline = pipe_cls(models, pcfg, sensor_shape=rig.camera.sensor_shape, clock=rig.clock.now)
        depth = {"net": NetDepth, "none": NoDepth, "oracle": OracleDepth}.get(spec.depth_source)
        depth_source = depth() if depth else DffDepth(rig.focus, rig.frames)
        ctl = AspirationController(rig.stage, rig.manipulator, rig.pump, rig.focus, rig.clock, cam_tf, manip_tf,
                                   depth_source, ControllerConfig())
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
    }


def operator_setup(rig, manip_tf, settings: TrialSettings, motility: str, rng: np.random.Generator) -> None:
    """What the operator does before handing over: focus on the cells by eye, and leave the pipette tip in
    the field a few um above the focal plane (never below the floor limit), not at any cell's depth."""
    from control.safety import SafetyConfig

    focus = settings.focus_start_um if motility == "motile" else settings.focus_start_immotile_um
    rig.focus.move_to_um(focus + rng.normal(0.0, settings.focus_error_um)).wait(5)
    (x0, x1), (y0, y1), (z0, z1) = settings.tip_start_lab_um
    z = max(rig.focus.z_um() + rng.uniform(z0, z1), SafetyConfig().tip_floor_um + 0.5)
    tip = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1), z])
    rig.manipulator.move_to_um(manip_tf.to_manipulator(tip)).wait(5)


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
                 workers: int = 2, progress: bool = True, resume: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    from app.config import load_rig_config

    config = load_rig_config(rig)
    if config.rehearsal:
        workers = 1  # one set of protocol servers (the uMp's UDP port, pylon's emulated camera) per machine
    key = hashlib.sha1(json.dumps([str(rig), n, seed, motility, depth_source]).encode()).hexdigest()[:16]
    log_db = TrialLog(db) if db is not None else None
    done: set[int] = set()
    campaign_id = None
    if log_db is not None:
        campaign_id = log_db.campaign(key, str(rig), n, seed, motility, depth_source,
                                      json.loads(config.model_dump_json()), {"kind": "nominal"}, {})
        done = log_db.finished_indices(campaign_id) if resume else set()
    specs = [TrialSpec(i, seed * 100003 + i, str(rig), motility, depth_source)  # type: ignore[arg-type]
             for i in range(n) if i not in done]
    results = log_db.results(campaign_id) if log_db is not None and campaign_id is not None else []
    t0 = time.perf_counter()
    bar = tqdm(total=n, initial=n - len(specs), desc=f"trials {motility}/{depth_source}", disable=not progress)
    try:
        if workers > 1 and len(specs) > 1:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_worker_init) as pool:
                for res in pool.imap_unordered(run_trial, specs):
                    _store(res, log_db, campaign_id, results, bar)
        else:
            for spec in specs:
                _store(run_trial(spec), log_db, campaign_id, results, bar)
    finally:
        bar.close()
        if log_db is not None:
            log_db.close()
    return summarise(results, time.perf_counter() - t0)


def _store(res: dict, log_db: TrialLog | None, campaign_id: int | None, results: list, bar) -> None:
    if log_db is not None and campaign_id is not None:
        log_db.record(campaign_id, res)
    results.append(res)
    bar.update(1)


def summarise(results: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    n = len(results)
    ok = sum(r["outcome"] == "success" for r in results)
    lo, hi = wilson_interval(ok, n)
    times = [r["duration_s"] for r in results if r["outcome"] == "success"]
    errors = [abs(r["depth_error_um"]) for r in results if r.get("depth_error_um") is not None]
    return {"n": n, "success_rate": ok / n if n else 0.0, "ci95": [lo, hi],
            "failures": dict(Counter(r["failure_mode"] for r in results if r["outcome"] != "success")),
            "median_time_s": float(np.median(times)) if times else None,
            "median_abs_depth_error_um": float(np.median(errors)) if errors else None, "wall_s": wall_s}


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


__all__ = ["run_campaign", "run_trial", "within_time_limit", "reject_failed_targets", "summarise", "format_table", "wilson_interval", "TrialSpec"]
