"""The live session: the camera streams, a background thread runs perception and steps the controller.

It runs on the rig's real-time clock. The camera's grab thread hands every image to the display (with the
newest estimate) and leaves the newest one for the control loop, which skips what it had no time for: the
video keeps the camera's rate however long perception takes, as at the microscope. A camera that cannot
stream (the rehearsal rig's, fed through pylon's emulation) is snapped in a loop on a thread of its own,
which hands its images on the same way. The GUI only receives
(image, estimate) pairs through a signal and sends commands (start, abort, select a target); nothing here
touches Qt.

Stopping: a supervisor (:mod:`control.supervisor`) watches the rig on a thread of its own, so a dead
camera, a pulled cable, an exception in perception or perception slower than the staleness limit end a
trial in ``Fault`` with the pump off and the pipette retracted, however the frames stop. :meth:`halt`
stops the pump and every motion at once (never the camera: the live video runs on through a stop, a
pause or a reset); pausing, closing the session and the signals SIGINT and SIGTERM
(:func:`stop_on_signals`) all go through it. Nothing moves at start-up until the operator acts.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from psygnal import Signal

from app.config import load_rig_config
from app.rig import Rig, build_rig
from app.trials import _models, reject_failed_targets, supervisor_config, trial_config
from control.aspiration import AspirationController, NetDepth
from control.depth_sources import OracleDepth
from control.supervisor import Supervisor
from drivers.clock import RealClock
from drivers.errors import DeviceError, MicromanipError
from drivers.stop import stop_in_parallel
from drivers.frame import Frame, RawImage
from drivers.interfaces import Roi
from perception.runtime.oracle import OracleSegPipeline
from perception.runtime.pipeline import PerceptionPipeline

log = logging.getLogger(__name__)


@dataclass
class TrialRecord:
    index: int
    outcome: str
    failure_mode: str | None
    duration_s: float
    target_id: int | None
    fault: str | None = None  # the device's message when the trial ended in Fault


class LiveSession:
    frame_ready = Signal(object, object)  # Frame (every camera image), newest Estimate | None
    trial_finished = Signal(object)  # TrialRecord
    state_changed = Signal(object)  # control.aspiration.Transition

    def __init__(self, rig_path: Path, seed: int = 0) -> None:
        self.seed = seed
        loaded = load_rig_config(rig_path)
        config, self.settings = trial_config(loaded, loaded.control.motility, "real")
        self.config = config
        # a recording, or a rig without motion devices: perception runs on every frame, no trial starts
        self.perception_only = config.perception_only
        self.rig: Rig = build_rig(config, seed=seed, clock=RealClock())
        if self.perception_only:
            roi_px = (self.rig.camera.roi.width, self.rig.camera.roi.height)  # the whole recorded frame
        else:
            self.rig.camera.set_roi(Roi(*self.settings.roi_px))
            roi_px = (self.settings.roi_px[2], self.settings.roi_px[3])
        oracle = self.settings.xy_source == "oracle" and not self.perception_only
        self.rig.camera.with_masks = oracle
        pcfg = config.control.perception_config(roi_px, "none" if oracle else "net", config.control.motility)
        try:
            models = _models(self.settings.xy_source, "oracle" if oracle else "net", pcfg)
        except MicromanipError as exc:
            raise MicromanipError(f"perception models: {exc}") from None
        cls = OracleSegPipeline if oracle else PerceptionPipeline
        self.pipeline = cls(models, pcfg, sensor_shape=self.rig.camera.sensor_shape, clock=self.rig.clock.now)
        self.depth_source = OracleDepth() if oracle else NetDepth()
        self.params = config.control.states.model_copy(deep=True)
        self.supervision = supervisor_config(config)
        self.supervisor = Supervisor(self.rig.stage, self.rig.manipulator, self.rig.pump, self.rig.focus,
                                     self.rig.clock, self.supervision, self.supervision.pump_deadline_s(self.params))
        self.supervisor.attach(self.rig.frames)
        self.controller: AspirationController | None = None
        self.trials: list[TrialRecord] = []
        self.paused = False
        self.latest_estimate = None
        self.fps = 0.0  # control loop (perception + controller) steps per second, smoothed
        self.steps = 0  # control loop steps so far
        self._newest: Frame | None = None  # left by the grab thread for the control loop
        self._image_arrived = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self._snapper: threading.Thread | None = None
        self._trial_t0 = 0.0
        self._finished: AspirationController | None = None  # the last trial recorded

    # ----- commands from the GUI ------------------------------------------------------------------------
    def start_trial(self) -> None:
        if self.perception_only:
            log.warning("this rig runs perception only (a recording, or no stage/manipulator/pump): no trial")
            return
        if self.controller is not None and not self.controller.done:
            return
        self.rig.calibration.require(self.config.source)
        self.depth_source = type(self.depth_source)()
        ctl_cfg = self.config.control.controller_config(self.rig.safety)
        ctl_cfg.params = self.params  # the window's parameter panel edits these
        cal = self.rig.calibration
        self.controller = AspirationController(self.rig.stage, self.rig.manipulator, self.rig.pump, self.rig.focus,
                                               self.rig.clock, cal.camera_tf, cal.manip_tf, self.depth_source, ctl_cfg)
        self.controller.transitioned.connect(lambda tr: self.state_changed.emit(tr))
        reject_failed_targets(self.controller, self.pipeline)
        self._trial_t0 = self.rig.clock.now()
        self.supervisor.pump_deadline_s = self.supervision.pump_deadline_s(self.params)
        self.supervisor.max_estimate_age_s = self.controller.cfg.safety.max_estimate_age_s
        self.supervisor.watch(self.controller)
        self.controller.start()

    def abort(self, reason: str = "operator abort") -> None:
        if self.controller is not None and not self.controller.done:
            self.controller.abort(reason)

    def stop_motion(self, reason: str) -> dict[str, str]:
        """Stop the pump and every motion now, all at once (never the camera). Returns {device: why its
        stop failed}. Safe from any thread."""
        log.warning("stopping the pump and all motion: %s", reason)
        rig = self.rig
        failed = stop_in_parallel([rig.pump, rig.stage, rig.manipulator, rig.focus])
        for name, why in failed.items():
            log.critical("%s: %s did not stop: %s", reason, name, why)
        return failed

    def halt(self, reason: str) -> dict[str, str]:
        """:meth:`stop_motion`, and abort a trial in progress (pipette retracted along its axis)."""
        failed = self.stop_motion(reason)
        self.abort(reason)
        return failed

    def select_target(self, track_id: int | None) -> None:
        self.pipeline.select_target(track_id)

    # ----- loop -----------------------------------------------------------------------------------------
    def start(self) -> LiveSession:
        self.supervisor.start()
        self.supervisor.expect("camera")
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="live-session", daemon=True)
        self._thread.start()
        self.rig.camera.image_ready.connect(self._on_image)
        try:
            self.rig.camera.start_streaming()
        except DeviceError as exc:
            log.info("%s; snapping in a loop instead", exc)
            self._snapper = threading.Thread(target=self._snap_loop, name="live-snap", daemon=True)
            self._snapper.start()
        return self

    def stop(self, reason: str = "session closed") -> None:
        """Pump and motion stopped first, then the threads, then the rig is closed."""
        self.halt(reason)
        self._running = False
        if self._thread is not None:
            self.rig.camera.image_ready.disconnect(self._on_image)
        with self._image_arrived:
            self._image_arrived.notify()
        for thread in (self._thread, self._snapper):
            if thread is not None:
                thread.join(5.0)
        self.supervisor.close()
        self.rig.close()

    def _snap_loop(self) -> None:
        while self._running:
            self.supervisor.expect("camera")
            try:
                image = self.rig.camera.snap()
            except DeviceError as exc:
                self.supervisor.report(exc)
                time.sleep(0.1)
                continue
            self._on_image(image)

    def _on_image(self, image: RawImage) -> None:  # the camera's grab thread
        # stamped on arrival: the stage may move while the image waits for the control loop
        try:
            frame = self.rig.frames.stamp(image)
        except DeviceError as exc:  # a stage or focus that does not answer: a fault, not a lost image
            self.supervisor.report(exc)
            return
        finally:
            self.supervisor.expect("camera")  # the next image is awaited from now
        with self._image_arrived:
            self._newest = frame
            self._image_arrived.notify()
        self.frame_ready.emit(frame, self.latest_estimate)

    def _next_frame(self) -> Frame | None:
        with self._image_arrived:
            if self._newest is None:
                self._image_arrived.wait(0.5)
            frame, self._newest = self._newest, None
        return frame

    def _loop(self) -> None:
        last = time.perf_counter()
        while self._running:
            ctl = self.controller
            if ctl is not None and ctl.done:
                self._finish(ctl)
            frame = self._next_frame()
            if frame is None:
                continue
            try:
                est = self.pipeline.process(frame)
                self.latest_estimate = est
                self.supervisor.estimate(est)
                ctl = self.controller
                if ctl is not None and not ctl.done and not self.paused:
                    ctl.step(est)
                    if ctl.done:
                        self._finish(ctl)
                now = time.perf_counter()
                self.fps = 0.9 * self.fps + 0.1 / max(now - last, 1e-3)
                self.steps += 1
                last = now
            except Exception as exc:  # the GUI must keep showing what happens; the error goes to the log view
                log.exception("live session step failed")
                self.supervisor.note("perception", f"{exc.__class__.__name__}: {exc}")
                time.sleep(0.1)

    def _finish(self, ctl: AspirationController) -> None:
        """Record a trial that has ended (once; also one the supervisor ended while no frame came)."""
        if ctl is self._finished:
            return
        self._finished = ctl
        self.supervisor.unwatch()
        rec = TrialRecord(len(self.trials) + 1, "success" if ctl.state.value == "Success" else "failed",
                          ctl.failure_mode, self.rig.clock.now() - self._trial_t0, ctl.target_id, ctl.fault_message)
        self.trials.append(rec)
        self.trial_finished.emit(rec)


def stop_on_signals(session: LiveSession, then: Callable[[], None],
                    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """On SIGINT or SIGTERM: halt the pump and every motion at once (on a thread of its own: the handler
    may have interrupted the main thread inside a device call), then ``then()`` (e.g. close the window).
    Replaces Python's KeyboardInterrupt, which would surface wherever the main thread happened to be."""

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        threading.Thread(target=session.halt, args=(name,), name=f"halt:{name}", daemon=True).start()
        then()

    for sig in signals:
        signal.signal(sig, handler)
