"""Campaigns of closed-loop aspiration trials on the simulated rig, in lockstep time, with per-trial
seeds, logged to SQLite, summarised as a table and JSON. Where the trials run (a local process pool or a
Ray cluster) is :mod:`app.campaign_engine`'s business; a sweep of conditions is :mod:`app.sweep`'s.

A fault ends one trial, not the campaign: a device error (met by the frame loop, the controller or the
supervisor, :mod:`control.supervisor`) ends the trial in ``Fault``, recorded as failed with failure mode
``fault:<device>``, and every trial that ran is recorded. Each trial builds (opens and checks) the rig
afresh; a rig that no longer opens stops the campaign with one line naming the device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.stats import binomtest

from app.trial_log import now_iso
from calibration.miscalibration import Miscalibration
from drivers.errors import DeviceError, MicromanipError
from drivers.units import Seconds, Um

log = logging.getLogger(__name__)
DepthSourceName = Literal["net", "oracle", "dff", "focal", "none"]
PERCEPTION_ONLY = "perception-only"  # the outcome of a trial on a rig that cannot move


class TrialSettings(BaseModel):
    """The simulated trial's set-up (rig file section ``control.trials``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    roi_px: tuple[int, int, int, int] = Field((640, 408, 640, 384), description="x, y, width, height on the sensor;"
                                              " a trial's operator then frames the tip with it (operator_setup)")
    n_sperm: int = Field(14, ge=1, le=2000)
    field_half_size_um: tuple[Um, Um] = (70.0, 50.0)
    focus_start_um: Um = Field(3.0, description="where the operator focuses for motile cells: the typical"
                               " height of the swimmers bound to the floor")
    focus_start_immotile_um: Um = Field(0.5, description="for immotile cells: the heads lying on the floor")
    focus_error_um: Um = Field(0.5, ge=0, description="s.d. of the operator's focusing by eye (about half the"
                               " depth of field)")
    tip_start_lab_um: tuple[tuple[Um, Um], tuple[Um, Um], tuple[Um, Um]] = Field(
        ((15.0, 40.0), (-15.0, 15.0), (1.0, 5.0)), description="ranges of where the operator leaves the tip: x, y"
        " in the field of view and z above the focal plane, clear of the cells")
    max_trial_s: Seconds = Field(15.0, gt=0)
    finish_attempt_s: Seconds = Field(4.0, ge=0, description="an attempt aspirating or verifying when the time"
                                      " limit comes may finish within this much longer (the cell may be inside)")
    perception_latency_s: Seconds = Field(0.012, ge=0, le=10, description="modelled compute time per frame")
    xy_source: Literal["net", "oracle"] = "net"
    miscalibration: Miscalibration = Field(default_factory=Miscalibration, description="errors added to the"
                                           " transforms the controller uses (robustness sweeps)")

    @field_validator("roi_px")
    @classmethod
    def _roi(cls, roi: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x, y, w, h = roi
        if x < 0 or y < 0 or not (16 <= w <= 16384 and 16 <= h <= 16384):
            raise ValueError(f"roi_px needs x, y >= 0 and a width and height of 16-16384 px, got {list(roi)}")
        return roi

    @field_validator("field_half_size_um")
    @classmethod
    def _field(cls, half: tuple[float, float]) -> tuple[float, float]:
        if min(half) <= 0:
            raise ValueError(f"field_half_size_um must be positive, got {list(half)}")
        return half


@dataclass(frozen=True)
class TrialSpec:
    index: int
    seed: int
    rig: str
    motility: Literal["motile", "immotile"]
    depth_source: DepthSourceName
    inject: tuple[str, ...] = ()  # DEVICE:FAULT@STATE (app/fault_injection.py), rehearsal rigs only
    record: str | None = None  # folder: the trial is recorded in record/trial-NNNN
    # the rig file's mapping with a sweep condition's changes (and weights chosen on the command line),
    # shipped with the trial (a cluster node may not have the file); None: read the file
    rig_data: dict[str, Any] | None = field(default=None, compare=False)


class RigUnavailable(MicromanipError):
    """The rig did not open or pass its set-up before a trial: the campaign cannot go on."""


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
            dnet = load_backend(pcfg.depth_weights, pcfg.backend, (1, 96, 96), threads=pcfg.inference_threads,
                                task="depth")[0] if depth == "net" else None
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


def trial_config(config, motility: str, clock: str):
    """The rig config with the trial's scene (cell count, field, motility mix) and the trial settings."""
    settings = config.control.trials
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


def supervisor_config(config):
    """The rig file's ``control.supervisor`` section (validated with the rig file)."""
    return config.control.supervisor


def _open_rig(config, seed: int, settings: TrialSettings, index: int):
    """Build the rig and set it up for a trial: the re-check between trials. RigUnavailable if it fails."""
    from app.rig import build_rig
    from drivers.interfaces import Roi

    try:
        rig = build_rig(config, seed=seed)
    except DeviceError as exc:
        raise RigUnavailable(f"trial {index}: the rig did not open: {exc}") from None
    try:
        rig.camera.set_roi(Roi(*settings.roi_px))
        sim_camera = next((t for t in rig.twins if t.kind == "camera"), rig.camera)
        sim_camera.with_masks = settings.xy_source == "oracle"
    except DeviceError as exc:
        rig.close()
        raise RigUnavailable(f"trial {index}: the rig failed its set-up: {exc}") from None
    return rig


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """One trial from a fresh simulated rig; the outcome is judged from the simulator's ground truth."""
    import torch

    from app.fault_injection import Injector, parse_injection
    from app.recording import Recorder, rig_meta
    from calibration.miscalibration import describe
    from control.aspiration import AspirationController, FocalPlaneDepth, NetDepth, NoDepth
    from control.depth_sources import DffDepth, OracleDepth, truth_for_target
    from control.states import State
    from control.supervisor import Supervisor
    from perception.runtime.oracle import OracleSegPipeline
    from perception.runtime.pipeline import PerceptionPipeline

    torch.set_num_threads(1)
    config = trial_rig_config(spec)
    config, settings = trial_config(config, spec.motility, "real" if config.rehearsal else "lockstep")
    if config.perception_only:
        return perception_only_trial(spec, config, settings)
    supervision = supervisor_config(config)
    injections = [parse_injection(text) for text in spec.inject]
    started, t_wall = now_iso(), time.perf_counter()
    with _open_rig(config, spec.seed, settings, spec.index) as rig:
        rig.calibration.require(spec.rig)
        cam_tf, manip_tf = rig.calibration.camera_tf, rig.calibration.manip_tf
        try:
            operator_setup(rig, cam_tf, manip_tf, settings, spec.motility, np.random.default_rng(spec.seed + 7))
        except DeviceError as exc:
            raise RigUnavailable(f"trial {spec.index}: the rig failed its set-up: {exc}") from None
        cam_tf, manip_tf = settings.miscalibration.apply(cam_tf, manip_tf)  # robustness sweeps: errors added
        calibration_sources, floor_z_um = dict(rig.calibration.sources), rig.calibration.floor_z_um
        # one inference thread: the worker processes already keep every core busy, and a second thread costs
        # ~40% more CPU per inference for a small latency gain nobody waits for in lockstep time
        pcfg = config.control.perception_config(
            (settings.roi_px[2], settings.roi_px[3]), "net" if spec.depth_source == "net" else "none", spec.motility,
            threads=1)
        models = _models(settings.xy_source, spec.depth_source, pcfg)
        pipe_cls = OracleSegPipeline if settings.xy_source == "oracle" else PerceptionPipeline
        pipeline = pipe_cls(models, pcfg, sensor_shape=rig.camera.sensor_shape, clock=rig.clock.now)
        depth = {"net": NetDepth, "focal": FocalPlaneDepth, "none": NoDepth, "oracle": OracleDepth}.get(spec.depth_source)
        depth_source = depth() if depth else DffDepth(rig.focus, rig.frames)
        ctl_cfg = config.control.controller_config(rig.safety)
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
        supervisor = Supervisor(rig.stage, rig.manipulator, rig.pump, rig.focus, rig.clock, supervision,
                                supervision.pump_deadline_s(ctl.cfg.params), ctl.cfg.safety.max_estimate_age_s)
        supervisor.attach(rig.frames)
        recorder = None
        if spec.record is not None:
            recorder = Recorder(Path(spec.record) / f"trial-{spec.index:04d}",
                                {**rig_meta(rig), "seed": spec.seed, "motility": spec.motility,
                                 "depth_source": spec.depth_source}, rig.frames.pixel_size_um, max_queue=100_000)
            ctl.transitioned.connect(recorder.transition)
        t0 = rig.clock.now()
        injector = Injector(rig, ctl, injections, t0)
        supervisor.watch(ctl)
        if not rig.clock.is_simulated:
            supervisor.start()
        frames = 0
        try:
            ctl.start()
            frames = _run_loop(rig, ctl, pipeline, supervisor, settings, t0, last_est, recorder, manip_tf)
        finally:
            supervisor.close()
            if recorder is not None:
                recorder.close()
        if not ctl.done:
            ctl.abort("trial time limit")
            ctl.failure_mode = ctl.failure_mode or "timeout"
        duration = rig.clock.now() - t0
        injected = injector.report()  # before judging: the twin runs on while the probe watches
        outcome, mode = _judge(rig, ctl, record, settings)
    result = {
        "index": spec.index, "seed": spec.seed, "rig": spec.rig, "start": started, "end": now_iso(),
        "outcome": outcome, "failure_mode": mode, "target_id": ctl.target_id, "depth_error_um": record["depth_error_um"],
        "duration_s": duration, "frames": frames, "wall_s": time.perf_counter() - t_wall,
        "fault": ctl.fault_message,
        "events": [{"t_s": e.t_s - t0, "src": e.src.value, "dst": e.dst.value, "reason": e.reason,
                    "target_id": e.target_id} for e in ctl.events],
        # what the controller ran with: the calibration it used (where each part came from, any errors
        # added) and its parameters, recorded with the campaign
        "setup": {"calibration": {"source": calibration_sources, "floor_z_um": floor_z_um, **describe(cam_tf, manip_tf),
                                  "miscalibration": settings.miscalibration.model_dump()},
                  "controller": {"trials": settings.model_dump(), "perception": pcfg.model_dump(),
                                 "controller": dataclasses.asdict(ctl_cfg)}},
    }
    if injected:
        result["injected"] = injected
    return result


def _run_loop(rig, ctl, pipeline, supervisor, settings: TrialSettings, t0: float, last_est: dict, recorder,
              manip_tf) -> int:
    """Frames -> perception -> controller until the trial ends; returns the frames processed. A device
    error, here or in the controller, ends the trial in Fault; so does an exception in perception. With a
    recorder, each frame goes to it with the tip's position, and each estimate."""
    frames = 0
    while not ctl.done and within_time_limit(rig.clock.now() - t0, ctl.state, settings):
        try:
            frame = rig.frames.snap()
        except DeviceError as exc:
            ctl.fault(exc.device, str(exc))
            break
        if recorder is not None:  # lockstep time: nothing moves between the frame and this read
            tip = rig.manipulator.position_um()
            recorder.frame(frame, tip, manip_tf.to_lab(tip))
        try:
            est = pipeline.process(frame)
        except Exception as exc:  # a failure in perception ends the trial as a fault, recorded
            log.exception("perception failed")
            ctl.fault("perception", f"perception: {exc.__class__.__name__}: {exc}")
            break
        if recorder is not None:
            recorder.estimate(est)
        last_est["est"] = est
        rig.clock.sleep(settings.perception_latency_s)
        supervisor.estimate(est)
        try:
            ctl.step(est)
        except Exception as exc:  # a bug in the controller: motion stopped, the trial recorded, not the campaign lost
            log.exception("controller step failed")
            ctl.fault("controller", f"controller: {exc.__class__.__name__}: {exc}")
            break
        if rig.clock.is_simulated:
            supervisor.check()
        frames += 1
    return frames


def perception_only_trial(spec: TrialSpec, config, settings: TrialSettings) -> dict[str, Any]:
    """A trial on a rig that cannot move (a recording, or no stage/manipulator/pump): perception runs on the
    whole frame for the trial's time (or until a recording that does not loop ends) and the record says
    what it saw: frames, tracks, the target the policy chose and its depth. Nothing is judged or moved."""
    from app.rig import build_rig
    from perception.runtime.pipeline import PerceptionPipeline

    started, t_wall = now_iso(), time.perf_counter()
    frames, tracks, targets, depth_um = 0, [], Counter(), None
    with build_rig(config, seed=spec.seed) as rig:
        h, w = rig.camera.roi.height, rig.camera.roi.width
        pcfg = config.control.perception_config((w, h), "net" if spec.depth_source == "net" else "none", spec.motility)
        pipeline = PerceptionPipeline(_models("net", spec.depth_source, pcfg), pcfg, sensor_shape=(h, w),
                                      clock=rig.clock.now)
        t0 = rig.clock.now()
        while rig.clock.now() - t0 < settings.max_trial_s:
            try:
                frame = rig.frames.snap()
            except DeviceError:  # a recording that does not loop has ended
                break
            est = pipeline.process(frame)
            frames += 1
            tracks.append(len(est.tracks))
            if est.target_id is not None:
                targets[est.target_id] += 1
                depth_um = est.target_depth.mean_um if est.target_depth is not None else depth_um
        duration = rig.clock.now() - t0
    target = targets.most_common(1)[0][0] if targets else None
    return {
        "index": spec.index, "seed": spec.seed, "rig": spec.rig, "start": started, "end": now_iso(),
        "outcome": PERCEPTION_ONLY, "failure_mode": None, "target_id": target, "depth_error_um": None,
        "duration_s": duration, "frames": frames, "wall_s": time.perf_counter() - t_wall, "events": [],
        "perception": {"median_tracks": float(np.median(tracks)) if tracks else 0.0,
                       "frames_with_target": sum(targets.values()), "target_depth_um": depth_um},
    }


def operator_setup(rig, cam_tf, manip_tf, settings: TrialSettings, motility: str, rng: np.random.Generator) -> None:
    """What the operator does before handing over: focus on the cells by eye, leave the pipette tip in the
    field a few um above the focal plane (never below the floor limit), not at any cell's depth, and frame
    the tip with the camera's ROI as perception frames its own region (``roi_around_tip``): the camera sees
    what passes the opening, not only what comes to it."""
    from drivers.interfaces import Roi
    from perception.runtime.pipeline import roi_around_tip

    focus = settings.focus_start_um if motility == "motile" else settings.focus_start_immotile_um
    lim = rig.focus.limits  # an operator focusing by eye stays within the drive's travel
    rig.focus.move_to_um(float(np.clip(focus + rng.normal(0.0, settings.focus_error_um), lim.min_um, lim.max_um))).wait(5)
    (x0, x1), (y0, y1), (z0, z1) = settings.tip_start_lab_um
    z = max(rig.focus.z_um() + rng.uniform(z0, z1), rig.safety.tip_floor_um + 0.5)
    tip = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1), z])
    rig.manipulator.move_to_um(manip_tf.to_manipulator(tip)).wait(5)
    h, w = rig.camera.sensor_shape
    x, y, rw, rh = roi_around_tip(tuple(cam_tf.lab_um_to_px(tip[:2])[0]), (w, h), settings.roi_px[2:])
    rig.camera.set_roi(Roi(x, y, rw, rh).on_offset_grid())


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

    if ctl.state == State.FAULT:  # whatever the twin shows: a fault is recorded as one, naming the device
        return "failed", ctl.failure_mode or "fault"
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


def _take_one_core() -> Callable[[], None]:
    """Run trials as a campaign worker does, on one core: no twin side-job thread, one OpenCV thread, one
    BLAS/OpenMP thread. Returns what puts the replaced settings back.

    Each worker of a campaign owns a core, so more threads would only contend for it: OpenCV's pool costs
    ~3% CPU per trial frame (57.0 -> 55.3 ms), and trials in the pool ran 10-17% slower per trial than in
    Ray's workers, which get OMP_NUM_THREADS=1 from Ray (benchmarks/campaign_scaling.py).
    """
    import cv2
    from threadpoolctl import threadpool_limits

    from sim import workers

    threaded, cv2_threads = workers.threaded(), cv2.getNumThreads()
    workers.set_threaded(False)
    cv2.setNumThreads(1)
    limits = threadpool_limits(limits=1)

    def restore() -> None:
        limits.restore_original_limits()
        workers.set_threaded(threaded)
        cv2.setNumThreads(cv2_threads)

    return restore


@contextlib.contextmanager
def one_core_per_trial() -> Iterator[None]:
    """A campaign run in this process (one worker) takes a worker's settings for its duration, so one and N
    workers run the same trial and scaling is measured on it."""
    restore = _take_one_core()
    try:
        yield
    finally:
        restore()


def _worker_init() -> None:
    """A pool or Ray worker process: quiet, and one core per trial for its whole life."""
    logging.getLogger().setLevel(logging.WARNING)
    _take_one_core()


def run_campaign(rig: Path, n: int, seed: int, motility: str, depth_source: str, db: Path | None,
                 workers: int = 2, progress: bool = True, resume: bool = False, engine: str = "local",
                 ray_address: str | None = None, record: Path | None = None,
                 weights: tuple[str | None, str | None] = (None, None),
                 inject: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run (``resume``: continue) a campaign on the engine named (``local`` process pool or ``ray``); a rig
    that stops opening ends it with one line, every trial run kept."""
    from app.campaign_engine import make_engine, run_plans
    from app.config import load_rig_config
    from app.fault_injection import parse_injection
    from app.sweep import campaign_plan

    rehearsal = load_rig_config(rig).rehearsal
    for text in inject:
        parse_injection(text)
    if inject and not rehearsal:
        raise MicromanipError("--inject needs a rehearsal rig (devices with `twin: true`, e.g. --rig rehearsal)")
    if rehearsal:
        if engine == "ray":
            raise MicromanipError("a rehearsal rig runs its protocol servers on this machine: use --engine local")
        workers = 1  # one set of protocol servers (the uMp's UDP port, pylon's emulated camera) per machine
    plan = campaign_plan(Path(rig), n, seed, motility, depth_source, weights=weights, inject=inject,
                         record=None if record is None else str(record))
    runner = make_engine(engine, workers, ray_address)
    try:
        return run_plans([plan], runner, db, resume=resume, progress=progress,
                         desc=f"trials {motility}/{depth_source}")[plan.key]
    finally:
        runner.close()


def summarise(results: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    n = len(results)
    if n and all(r["outcome"] == PERCEPTION_ONLY for r in results):
        # trials resumed from a trial log carry only the log's columns
        return {"n": n, "perception_only": True, "frames": sum(r.get("frames", 0) for r in results),
                "median_tracks": float(np.median([r.get("perception", {}).get("median_tracks", 0.0) for r in results])),
                "with_target": sum(r["target_id"] is not None for r in results), "wall_s": wall_s}
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
    if summary.get("perception_only"):
        return "\n".join([f"{title}: {summary['n']} perception-only trials in {summary['wall_s']:.0f} s wall "
                          "(the rig cannot move: nothing was aspirated or judged)",
                          "| trials | frames | median tracks a frame | trials with a target |", "|---|---|---|---|",
                          f"| {summary['n']} | {summary['frames']} | {summary['median_tracks']:g} | "
                          f"{summary['with_target']} |"])
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
           "wilson_interval", "TrialSpec", "RigUnavailable", "supervisor_config", "trial_rig_config"]
