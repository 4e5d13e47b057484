"""A watchdog that does not depend on frames: the pump's deadline, the devices' faults and the liveness of
camera, stage, focus and perception, checked on a thread of its own.

The aspiration controller acts only when perception hands it an estimate. A dead camera, a pulled cable
read by the frame loop, an exception in perception or perception slower than the staleness limit all
leave it without estimates (or with stale ones it must not act on), frozen in whatever state it was in,
with the pump running. The supervisor closes that hole:

- the pump has a deadline from the moment it starts (:attr:`SupervisorConfig.pump_max_on_s`, by default
  the aspiration timeout plus the time the pump runs on after an entry, plus one control period); a pump
  running past it is stopped, whoever started it;
- a fault a driver notices on its own (a lost link, a pump alarm, a failed keepalive: ``faulted``) or
  one the frame loop meets (:meth:`report`) trips it at once;
- while a trial runs, a device that proves its link with keepalive pings (the uMp: its calls queue on
  libum's lock, so a ping can wait out a stalled call before its own timeout) must not leave one
  unanswered longer than ``silence_s``;
- while a trial runs, a request to the camera, the stage or the focus (the frame source marks when it
  starts waiting and when the answer comes) must be answered within that source's loss limit, and
  perception must deliver an estimate fresh enough to act on within its own (until a source has first
  answered, within ``startup_s``: a first frame renders and infers slowly). Waiting, not
  the time between answers, is what counts: a slow loop is not a dead camera.

A trip stops the pump and all motion at once, in parallel (the drivers' stops are not queued behind a
stalled query), then ends the trial in ``Fault`` through :meth:`AspirationController.fault`, which
retracts the pipette along its axis (unless the manipulator is the device that failed) and records the
device and the reason. Faults are only recorded from the supervisor's own thread (or the caller's
:meth:`check` on a simulated clock), never from a driver's reader thread, which must stay free to read the
replies to those stops.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from psygnal import Signal
from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import DeviceError
from drivers.stop import stop_in_parallel
from drivers.units import Seconds

log = logging.getLogger(__name__)

#: what each liveness source stands for in a fault's reason
SOURCES = {"camera": "no image", "stage": "no stage position", "focus": "no focus position",
           "perception": "no estimate fresh enough to act on"}
#: sources whose requests are timed while outstanding (perception is timed between fresh estimates)
REQUESTED = ("camera", "stage", "focus")


class SupervisorConfig(BaseModel):
    """The rig file's ``control.supervisor`` section."""

    model_config = ConfigDict(extra="forbid")

    poll_s: Seconds = Field(0.02, gt=0, description="how often the watchdog looks")
    pump_max_on_s: Seconds | None = Field(None, gt=0, description="longest the pump may run from its start; "
                                          "default: the aspiration timeout + post-entry time + control_period_s")
    control_period_s: Seconds = Field(0.25, ge=0, description="latest a controller's own stop may come after "
                                      "its deadline (a frame or two)")
    camera_loss_s: Seconds = Field(0.75, gt=0, description="longest without an image during a trial")
    stage_loss_s: Seconds = Field(0.75, gt=0, description="longest without a stage position during a trial")
    focus_loss_s: Seconds = Field(0.75, gt=0, description="longest without a focus position during a trial")
    perception_loss_s: Seconds = Field(1.0, gt=0, description="longest without a fresh estimate during a trial")
    silence_s: Seconds = Field(0.75, gt=0, description="longest a device that proves its link with keepalive "
                               "pings (the uMp) may go unanswered during a trial")
    startup_s: Seconds = Field(10.0, gt=0, description="longest until each source is first heard from in a trial")

    def pump_deadline_s(self, params: Any) -> float:
        """The pump's deadline for a controller with ``params`` (control.states.MachineParams)."""
        if self.pump_max_on_s is not None:
            return self.pump_max_on_s
        return params.aspirating.timeout_s + params.aspirating.post_entry_s + self.control_period_s


class Supervisor:
    """Watches one rig; :meth:`watch` a controller for the length of a trial.

    On a real clock :meth:`start` runs the checks on a thread of its own; on a simulated clock (lockstep
    campaigns, where time moves only when the loop sleeps) the loop calls :meth:`check` itself.
    """

    tripped = Signal(str, str)  # device, reason

    def __init__(self, stage: Any, manipulator: Any, pump: Any, focus: Any, clock: Any,
                 config: SupervisorConfig | None = None, pump_deadline_s: float | None = None,
                 max_estimate_age_s: float = 0.15) -> None:
        self.stage, self.manipulator, self.pump, self.focus = stage, manipulator, pump, focus
        self.clock = clock
        self.cfg = config or SupervisorConfig()
        self.pump_deadline_s = pump_deadline_s if pump_deadline_s is not None else (self.cfg.pump_max_on_s or 2.9)
        self.max_estimate_age_s = max_estimate_age_s
        self.limits = {"camera": self.cfg.camera_loss_s, "stage": self.cfg.stage_loss_s,
                       "focus": self.cfg.focus_loss_s, "perception": self.cfg.perception_loss_s}
        self._lock = threading.Lock()
        self._waiting: dict[str, float] = {}  # source -> when the loop started waiting for it
        self._fresh_s = 0.0  # the last estimate fresh enough to act on (or the trial's start)
        self._heard: set[str] = set()  # sources heard from since the supervisor started
        self._notes: dict[str, str] = {}
        self._reported: DeviceError | None = None
        self._controller: Any = None
        self.trip_reason: tuple[str, str] | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._devices = [d for d in (stage, manipulator, pump, focus) if d is not None]
        for device in self._devices:
            device.faulted.connect(self.report)

    # ----- what the rig and the loop tell it (any thread) -----------------------------------------------
    def expect(self, source: str, restart: bool = False) -> None:
        """The loop starts waiting for ``source`` (camera, stage, focus) now, unless it already waits
        (``restart``: from now in any case)."""
        with self._lock:
            if restart:
                self._waiting[source] = self.clock.now()
            else:
                self._waiting.setdefault(source, self.clock.now())

    def attach(self, frames: Any) -> None:
        """Time the frame source's camera, stage and focus. A rehearsal camera (sim.twin_fed_basler) is told
        too: the twin's rendering stands for the light reaching the sensor, not for the camera answering."""
        frames.watcher = self
        if hasattr(frames.camera, "watcher"):
            frames.camera.watcher = self

    def beat(self, source: str) -> None:
        """``source`` just answered."""
        with self._lock:
            self._waiting.pop(source, None)
            self._heard.add(source)

    def estimate(self, est: Any) -> None:
        """Perception produced ``est``: perception is alive if it is fresh enough for the controller to act on."""
        now = self.clock.now()
        if now - est.capture_time_s <= self.max_estimate_age_s:
            with self._lock:
                self._fresh_s = now
                self._heard.add("perception")
        else:
            self.note("perception", f"estimates {1e3 * (self.clock.now() - est.capture_time_s):.0f} ms old "
                                    f"(limit {1e3 * self.max_estimate_age_s:.0f} ms)")

    def note(self, source: str, message: str) -> None:
        """The last thing that went wrong with ``source`` (named in the reason if it is lost)."""
        with self._lock:
            self._notes[source] = message

    def report(self, error: DeviceError) -> None:
        """A device fault (from any thread, a driver's included): acted on at the next check."""
        with self._lock:
            if self._reported is None:
                self._reported = error

    # ----- a trial --------------------------------------------------------------------------------------
    def watch(self, controller: Any) -> None:
        """Supervise ``controller``'s trial: liveness counts from now; an earlier fault is forgotten."""
        with self._lock:
            now = self.clock.now()
            self._waiting = {source: now for source in self._waiting}  # a wait from before counts from now
            self._fresh_s = now
            self._notes.clear()
            self._reported = None
            self._controller = controller
            self.trip_reason = None

    def unwatch(self) -> None:
        with self._lock:
            self._controller = None

    # ----- checks ---------------------------------------------------------------------------------------
    def check(self) -> None:
        """One look: a reported fault, the pump's deadline, liveness. Trips at most once per trial."""
        now = self.clock.now()
        with self._lock:
            ctl = self._controller
            reported, self._reported = self._reported, None
            watching = ctl is not None and not ctl.done and self.trip_reason is None
            waited = {**self._waiting, "perception": self._fresh_s}
            heard = set(self._heard)
        # until first heard from, a source has startup_s
        stale = [(now - since, s) for s, since in waited.items()
                 if watching and now - since > (self.limits[s] if s in heard else self.cfg.startup_s)]
        if reported is not None:
            if watching:
                self._trip(reported.device, str(reported))
            else:
                log.error("supervisor: %s (no trial running)", reported)
            return
        started = getattr(self.pump, "flow_started_s", None)
        if self.pump is not None and started is not None and self.pump.rate_nl_s() != 0 \
                and now - started > self.pump_deadline_s:
            reason = f"pump: ran {now - started:.2f} s, past its deadline of {self.pump_deadline_s:.2f} s"
            if watching:
                self._trip("pump", reason)
            else:
                log.critical("supervisor: %s; stopping it", reason)
                stop_in_parallel([self.pump], confirm_s=1.0)
            return
        silent = [(quiet, d.name) for d in self._devices
                  if watching and (quiet := d.silent_s()) is not None and quiet > self.cfg.silence_s]
        if silent:
            quiet, name = max(silent)
            self._trip(name, f"{name}: no reply for {quiet:.2f} s (limit {self.cfg.silence_s:g} s)")
            return
        if stale:
            age, source = max(stale)
            note = self._notes.get(source)
            lost = f"for {age:.2f} s (limit {self.limits[source]:g} s)" if source in heard \
                else f"since it was first asked, {age:.2f} s ago ({self.cfg.startup_s:g} s allowed)"
            self._trip(source, f"{source}: {SOURCES[source]} {lost}" + (f"; last: {note}" if note else ""))

    def _trip(self, device: str, reason: str) -> None:
        with self._lock:
            if self.trip_reason is not None:
                return
            self.trip_reason = (device, reason)
            ctl = self._controller
        log.critical("supervisor: %s: stopping the pump and all motion", reason)
        # the stops go out now, whatever the controller is doing; it confirms them (and retracts the
        # pipette) once its step in progress, if any, has ended
        stop_in_parallel([d for d in (self.pump, self.stage, self.manipulator) if d is not None], confirm_s=0.0)
        if ctl is not None:
            ctl.fault(device, reason)
        self.tripped.emit(device, reason)

    # ----- thread ---------------------------------------------------------------------------------------
    def start(self) -> Supervisor:
        """Check every ``poll_s`` on a thread of its own (real clocks only)."""
        if self.clock.is_simulated:
            raise RuntimeError("on a simulated clock the loop calls check() itself")
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._closed.wait(self.cfg.poll_s):
            try:
                self.check()
            except Exception:  # the watchdog must outlive any one failure
                log.exception("supervisor check failed")

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        for device in self._devices:
            device.faulted.disconnect(self.report)
