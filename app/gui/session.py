"""The live session: the camera streams, a background thread runs perception and steps the controller.

It runs on the rig's real-time clock. The camera's grab thread hands every image to the display (with the
newest estimate) and leaves the newest one for the control loop, which skips what it had no time for: the
video keeps the camera's rate however long perception takes, as at the microscope. A camera that cannot
stream (the rehearsal rig's, fed through pylon's emulation) is snapped in a loop on a thread of its own,
which hands its images on the same way. The GUI only receives
(image, estimate) pairs through a signal and sends commands (start, abort, select a target); nothing here
touches Qt.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from psygnal import Signal

from app.config import load_rig_config
from app.rig import Rig, build_rig
from app.trials import _models, nominal_transforms, reject_failed_targets, trial_config
from control.aspiration import AspirationController, ControllerConfig, NetDepth
from control.depth_sources import OracleDepth
from control.states import MachineParams
from drivers.clock import RealClock
from drivers.errors import DeviceError, MicromanipError
from drivers.frame import Frame, RawImage
from drivers.interfaces import Roi
from perception.runtime.oracle import OracleSegPipeline
from perception.runtime.pipeline import PerceptionConfig, PerceptionPipeline

log = logging.getLogger(__name__)


@dataclass
class TrialRecord:
    index: int
    outcome: str
    failure_mode: str | None
    duration_s: float
    target_id: int | None


class LiveSession:
    frame_ready = Signal(object, object)  # Frame (every camera image), newest Estimate | None
    trial_finished = Signal(object)  # TrialRecord
    state_changed = Signal(object)  # control.aspiration.Transition

    def __init__(self, rig_path: Path, seed: int = 0) -> None:
        config, self.settings = trial_config(load_rig_config(rig_path), "motile", "real")
        self.rig: Rig = build_rig(config, seed=seed, clock=RealClock())
        self.rig.camera.set_roi(Roi(*self.settings.roi_px))
        oracle = self.settings.xy_source == "oracle"
        self.rig.camera.with_masks = oracle
        pcfg = PerceptionConfig(roi_px=(self.settings.roi_px[2], self.settings.roi_px[3]),
                                depth_source="none" if oracle else "net", inference_threads=1)
        try:
            models = _models(self.settings.xy_source, "oracle" if oracle else "net", pcfg)
        except MicromanipError as exc:
            raise MicromanipError(f"perception models: {exc}") from None
        cls = OracleSegPipeline if oracle else PerceptionPipeline
        self.pipeline = cls(models, pcfg, sensor_shape=self.rig.camera.sensor_shape, clock=self.rig.clock.now)
        self.depth_source = OracleDepth() if oracle else NetDepth()
        self.params = MachineParams()
        self.camera_tf, self.manip_tf = nominal_transforms(self.rig)
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
        self.rig.focus.move_to_um(self.settings.focus_start_um).wait(5)

    # ----- commands from the GUI ------------------------------------------------------------------------
    def start_trial(self) -> None:
        if self.controller is not None and not self.controller.done:
            return
        self.depth_source = type(self.depth_source)()
        self.controller = AspirationController(self.rig.stage, self.rig.manipulator, self.rig.pump, self.rig.focus,
                                               self.rig.clock, self.camera_tf, self.manip_tf, self.depth_source,
                                               ControllerConfig(params=self.params))
        self.controller.transitioned.connect(lambda tr: self.state_changed.emit(tr))
        reject_failed_targets(self.controller, self.pipeline)
        self._trial_t0 = self.rig.clock.now()
        self.controller.start()

    def abort(self) -> None:
        if self.controller is not None and not self.controller.done:
            self.controller.abort("operator abort")

    def select_target(self, track_id: int | None) -> None:
        self.pipeline.select_target(track_id)

    # ----- loop -----------------------------------------------------------------------------------------
    def start(self) -> LiveSession:
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

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self.rig.camera.image_ready.disconnect(self._on_image)
        with self._image_arrived:
            self._image_arrived.notify()
        for thread in (self._thread, self._snapper):
            if thread is not None:
                thread.join(5.0)
        self.rig.close()

    def _snap_loop(self) -> None:
        while self._running:
            try:
                self._on_image(self.rig.camera.snap())
            except MicromanipError as exc:
                log.error("snap failed: %s", exc)
                time.sleep(0.1)

    def _on_image(self, image: RawImage) -> None:  # the camera's grab thread
        # stamped on arrival: the stage may move while the image waits for the control loop
        frame = self.rig.frames.stamp(image)
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
            frame = self._next_frame()
            if frame is None:
                continue
            try:
                est = self.pipeline.process(frame)
                self.latest_estimate = est
                ctl = self.controller
                if ctl is not None and not ctl.done and not self.paused:
                    ctl.step(est)
                    if ctl.done:
                        self._finish(ctl)
                now = time.perf_counter()
                self.fps = 0.9 * self.fps + 0.1 / max(now - last, 1e-3)
                self.steps += 1
                last = now
            except Exception:  # the GUI must keep showing what happens; the error goes to the log view
                log.exception("live session step failed")
                time.sleep(0.1)

    def _finish(self, ctl: AspirationController) -> None:
        rec = TrialRecord(len(self.trials) + 1, "success" if ctl.state.value == "Success" else "failed",
                          ctl.failure_mode, self.rig.clock.now() - self._trial_t0, ctl.target_id)
        self.trials.append(rec)
        self.trial_finished.emit(rec)
