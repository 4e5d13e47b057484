"""Closed-loop aspiration of one sperm, one perception estimate at a time.

The stage keeps the target at ``offset_px`` in front of the pipette opening (visual servoing on the
predicted target position); the manipulator brings the tip to the target's estimated depth; the kept
distance then shrinks, the pump starts when the cell is close and swimming toward the tip, stops when the
head enters (or as soon as a head is seen drawn up the bore: ``control/bore_watch.py``), and the cell must
stay inside for ``hold_s`` while the tip backs away a little: a cell inside goes with the pipette, so a
head still lying where the target was (debris taken for a head, a cell that passed beneath the tip) fails
the attempt instead of passing for a success, and success needs a head seen inside the bore, one that
moves (``control/bore_watch.py``: not something lying still behind the glass). Every
transition is an event with a reason.

Faults end the trial truthfully: a device error met in :meth:`step`, a fault the device reported for a
move in progress (every move's handle is checked at each step), or a fault reported from outside
(:meth:`fault`, from the supervisor's thread: a dead camera, a lost link, a stalled perception) stops the
pump and the motion, retracts the pipette along its axis (a checked move; not when the manipulator itself
failed, nor after an emergency stop: then the pipette stays where its stop left it) and ends in ``Fault``
with failure mode ``fault:<device>`` and the device's message. A depth reading that is not a number is no
reading, and a motion the safety checks refuse ends the attempt, not the campaign.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from psygnal import Signal

from calibration.transforms import CameraStageTransform, ManipulatorTransform
from control.bore_watch import BorePoint, DrawnInWatch, HeldInBoreWatch
from control.pid import AxisPID, PIDGains
from control.safety import SafetyConfig, SafetyError, check_estimate, check_tip_target, tip_speed
from control.states import TERMINAL, TRANSITIONS, MachineParams, State, check_transition
from drivers.clock import Clock
from drivers.errors import DeviceError
from drivers.interfaces import FocusDrive, Manipulator, MoveHandle, Pump, XYStage
from drivers.stop import StopBatch
from perception.runtime.estimate import BoreSighting, Estimate

log = logging.getLogger(__name__)

#: How long after a fault the controller waits for each device to confirm its stop
STOP_CONFIRM_S = 1.0


@dataclass(frozen=True)
class Transition:
    t_s: float
    src: State
    dst: State
    reason: str
    target_id: int | None


@dataclass(frozen=True)
class DepthReading:
    """Target depth relative to the focal plane (um), its standard deviation, how many frames fed it, and
    the depths its source measures (a range-limited source's reading at an end may lie beyond it)."""

    mean_um: float
    std_um: float
    observations: int
    range_um: tuple[float, float] = (-2.0, 2.0)


class DepthSource(Protocol):
    name: str

    def __call__(self, estimate: Estimate) -> DepthReading | None: ...


class NetDepth:
    """The network's class posteriors fused by the perception's Bayes filter. The classifier measures a
    4 um span (``range_limited``: its classes' span as head heights): the controller refocuses on a cell read
    at either end."""

    name = "net"
    range_limited = True

    def __init__(self) -> None:
        self.count, self.target = 0, None

    def __call__(self, estimate: Estimate) -> DepthReading | None:
        if estimate.target_id != self.target:
            self.count, self.target = 0, estimate.target_id
        d = estimate.target_depth
        if d is None:
            return None
        self.count += int(d.measured)
        return DepthReading(d.mean_um, d.std_um, self.count, d.range_um)


class NoDepth:
    """No depth perception: XY alignment only, the tip left at the height where the operator put it: the
    baseline that depth perception is judged against. The controller skips the depth step (``perceives_depth``)."""

    name = "none"
    perceives_depth = False

    def __call__(self, estimate: Estimate) -> DepthReading | None:
        return None


class FocalPlaneDepth:
    """The cell assumed to lie in the focal plane: the tip is brought there, as by an operator who focused
    on the cell. One bit of depth perception, which a cell outside the depth of field defeats."""

    name = "focal"

    def __call__(self, estimate: Estimate) -> DepthReading | None:
        return DepthReading(0.0, 0.5, 1_000_000) if estimate.target_id is not None else None


@dataclass
class ControllerConfig:
    params: MachineParams = field(default_factory=MachineParams)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    stage_gains: PIDGains = field(default_factory=PIDGains)
    pipette_axis_deg: float = 0.0  # direction from the opening into the pipette, in image axes
    pipette_inner_radius_um: float = 3.0
    pipette_wall_um: float = 1.0
    swimming_um_s: float = 5.0  # slower cells are pushed in by the stage, not timed by their swimming
    lost_frames: int = 14  # target missing this long (0.35 s at 40 fps): retarget
    vanished_frames: int = 3  # target missing this long at the opening: the glass hides it, it entered
    max_search_moves: int = 3
    search_step_um: float = 120.0


class AspirationController:
    transitioned = Signal(object)  # Transition

    def __init__(self, stage: XYStage, manipulator: Manipulator, pump: Pump, focus: FocusDrive, clock: Clock,
                 camera_tf: CameraStageTransform, manip_tf: ManipulatorTransform, depth: DepthSource,
                 config: ControllerConfig | None = None) -> None:
        self.stage, self.manipulator, self.pump, self.focus = stage, manipulator, pump, focus
        self.clock = clock
        self.camera_tf = camera_tf
        self.manip_tf = manip_tf
        self.depth = depth
        self.cfg = config or ControllerConfig()
        self.state = State.IDLE
        self._lock = threading.RLock()  # one step, fault or abort at a time (the supervisor calls from its thread)
        self._moves: dict[str, MoveHandle] = {}  # the latest move commanded of each device, checked every step
        self.fault_message: str | None = None
        self.events: list[Transition] = []
        self.target_id: int | None = None
        self._entered_s = clock.now()
        self._counter = 0
        self._attempts = 0
        self._search_moves = 0
        self._missing = 0
        self._offset_px = self.cfg.params.tracking.offset_px
        self._standoff_px = 0.0  # where the stage keeps the target from the opening while aspirating
        self._pid_x = AxisPID(self.cfg.stage_gains, self.cfg.safety.max_stage_speed_um_s)
        self._pid_y = AxisPID(self.cfg.stage_gains, self.cfg.safety.max_stage_speed_um_s)
        self._z_goal: float | None = None
        self.failure_mode: str | None = None
        self.last_depth: DepthReading | None = None
        self._last_target_px: np.ndarray | None = None
        self._entry_s: float | None = None
        self._last_target_stage_um: np.ndarray | None = None  # where it was last seen, in the sample frame
        self._spot_stage_um: np.ndarray | None = None  # the same, kept through verification
        self._entry_tip_stage_um: np.ndarray | None = None  # the opening when the pump stopped, sample frame
        self._entry_tip_px: np.ndarray | None = None
        self._spot_checks = self._spot_hits = 0
        self._held = HeldInBoreWatch()  # frames, since the entry, with a head seen in the bore (and not still)
        self._drawn_in = DrawnInWatch()  # follows sightings up the bore while the pump runs
        self._recent_bore: deque[tuple[BoreSighting, ...]] = deque(maxlen=3)  # the last frames' sightings
        self._seen_drawn_in = False  # the entry was a head seen drawn up the bore (proof of a cell inside)
        self._bystanders_um = np.empty((0, 2))  # other heads when the pump started, sample frame
        self._withdrawn_s: float | None = None
        self._focus_start_um = focus.z_um()
        self._withdrawn_from_lab: np.ndarray | None = None  # where the tip backed away from to verify
        self._depth_obs_after_refocus = 0  # depth readings to wait for after a refocus (-1: until it settles)
        ax = np.deg2rad(self.cfg.pipette_axis_deg)
        self._axis = np.array([np.cos(ax), np.sin(ax)])

    # ----- public ---------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def start(self) -> None:
        self._go(State.SEARCHING, "start")

    def abort(self, reason: str = "operator abort") -> None:
        """Stop everything, stop the pump, retract the pipette along its axis."""
        with self._lock:
            if self.done:
                return
            self._safe_stop(retract=True)
            self._go(State.ABORTED, reason)

    def fault(self, device: str, detail: str) -> None:
        """End the trial in ``Fault`` from any thread: pump and motion stopped, the pipette retracted along
        its axis, failure mode ``fault:<device>`` with ``detail``. Waits for a step in progress."""
        with self._lock:
            if self.done:
                return
            self._fault(device, detail)

    def _fault(self, device: str, detail: str) -> None:
        log.error("controller fault: %s", detail)
        # a manipulator whose link failed gets its stop and nothing more: a drive sent over a late or
        # garbled link would move the pipette at a time nobody chose (2 s late on a delayed uMp link)
        self._safe_stop(retract=device not in ("manipulator", "estop"))
        self.failure_mode = "estop" if device == "estop" else f"fault:{device}"
        self.fault_message = detail
        self._go(State.FAULT, detail)

    def tip_lab_um(self) -> np.ndarray:
        return self.manip_tf.to_lab(self.manipulator.position_um())

    def move_tip_lab(self, lab_um, speed_um_s: float | None = None):
        """Checked manual or automatic tip move in lab coordinates (refused before motion if unsafe)."""
        lab_um = np.asarray(lab_um, dtype=float)
        check_tip_target(lab_um, self.cfg.safety)
        speed = tip_speed(float(self.tip_lab_um()[2]), float(lab_um[2]),
                          speed_um_s or self.cfg.safety.max_tip_speed_um_s, self.cfg.safety)
        return self._track(self.manipulator.move_to_um(self.manip_tf.to_manipulator(lab_um), speed))

    def _track(self, handle: MoveHandle) -> MoveHandle:
        """Keep the latest move of each device: its handle is checked for a device fault every step."""
        self._moves[handle.device.name] = handle
        return handle

    def step(self, est: Estimate) -> State:
        """Advance on one perception estimate; device errors end in FAULT with motion stopped."""
        with self._lock:
            if self.done or self.state == State.IDLE:
                return self.state
            estop = self.stage.estop
            if estop.triggered:  # the switch every device answers to
                self._fault("estop", f"emergency stop ({estop.reason})")
                return self.state
            try:
                try:
                    for handle in list(self._moves.values()):
                        handle.check()
                    self._step(est)
                except SafetyError as exc:  # a motion refused before it started: this attempt cannot go on
                    self._refused(str(exc))
            except DeviceError as exc:
                self._fault(exc.device, str(exc))
            return self.state

    def _refused(self, reason: str) -> None:
        log.warning("motion refused: %s", reason)
        if State.RETARGET in TRANSITIONS.get(self.state, set()):
            self._failed_attempt("refused", f"motion refused: {reason}")
        else:
            self.abort(f"motion refused: {reason}")

    # ----- internals ------------------------------------------------------------------------------------
    def _go(self, dst: State, reason: str) -> None:
        check_transition(self.state, dst)
        tr = Transition(self.clock.now(), self.state, dst, reason, self.target_id)
        log.info("%s -> %s (%s)", self.state.value, dst.value, reason, extra={"target_id": self.target_id})
        self.state = dst
        self._entered_s = tr.t_s
        self._counter = 0
        self.events.append(tr)
        self.transitioned.emit(tr)

    def _in_state_s(self) -> float:
        return self.clock.now() - self._entered_s

    def _safe_stop(self, retract: bool) -> None:
        """Pump, stage and manipulator stopped at once, in parallel; then the pipette backs out along its
        axis and up (best effort: the manipulator may be the device that failed). The retraction waits for
        the manipulator's stop only: a pump or stage whose link failed must not hold the pipette at the
        cell while its stop times out."""
        stops = StopBatch([self.pump, self.stage, self.manipulator])
        failed = stops.confirm(STOP_CONFIRM_S, only=[self.manipulator])
        if retract:
            try:
                back = self.tip_lab_um() + np.array([*self._axis * 30.0, 5.0])
                check_tip_target(back, self.cfg.safety)
                log.info("retracting the pipette to %s um (lab)", np.round(back, 1))
                self.manipulator.move_to_um(self.manip_tf.to_manipulator(back), 100.0)
            except Exception as exc:  # retraction is best effort; motion is already stopped
                log.error("retract failed: %s", exc)
        for name, why in (failed | stops.confirm(STOP_CONFIRM_S)).items():
            log.error("%s: stop failed: %s", name, why)

    def _tip_px(self, est: Estimate) -> np.ndarray | None:
        return np.asarray(est.tip.position_px) if est.tip else None

    def _servo_xy(self, est: Estimate, offset_px: float) -> float | None:
        """Drive the stage so the predicted target sits ``offset_px`` in front of the tip; returns error px."""
        tip = self._tip_px(est)
        if tip is None or est.target_predicted_px is None:
            self.stage.stop()
            return None
        desired = tip - self._axis * offset_px
        err_px = np.asarray(est.target_predicted_px) - desired
        err_um = self.camera_tf.px_to_lab_um(desired + err_px)[0] - self.camera_tf.px_to_lab_um(desired)[0]
        t = self.clock.now()
        # Feed-forward: the dish must move with the cell for its image to stand still.
        track = est.track(self.target_id) if self.target_id is not None else None
        ff = np.asarray(track.velocity_um_s) if track is not None else np.zeros(2)
        vx = ff[0] + self._pid_x(float(err_um[0]), t)
        vy = ff[1] + self._pid_y(float(err_um[1]), t)
        speed = float(np.hypot(vx, vy))
        if speed > 0.5:
            x, y = self.stage.position_um()
            dt = 0.05  # commands are renewed every frame; this horizon keeps the motion continuous
            self._track(self.stage.move_to_um(x + vx * dt, y + vy * dt,
                                              min(max(speed, 1.0), self.cfg.safety.max_stage_speed_um_s)))
        return float(np.linalg.norm(err_px))

    def _target_z_lab(self, reading: DepthReading) -> float:
        return self.focus.z_um() + reading.mean_um

    def _follow_depth(self, reading: DepthReading, speed: float) -> float:
        """Command the tip toward the target depth (clamped to the floor limit); returns |dz| um."""
        goal = max(self._target_z_lab(reading), self.cfg.safety.tip_floor_um)
        tip = self.tip_lab_um()
        if self._z_goal is None or abs(goal - self._z_goal) > 0.15:
            self._z_goal = goal
            self.move_tip_lab([tip[0], tip[1], goal], speed)
        return abs(tip[2] - goal)

    def _step(self, est: Estimate) -> None:
        p = self.cfg.params
        now = self.clock.now()
        age = now - est.capture_time_s
        self._recent_bore.append(est.bore)
        # Target bookkeeping
        seen = est.target_id is not None and est.target_id == self.target_id and (
            est.track(self.target_id) is not None and est.track(self.target_id).misses == 0)
        head_px = self._head_px(est) if seen else None
        if head_px is not None and self._entry_s is not None and self._within_glass(head_px, self._tip_px(est)):
            # once the head has entered, a "sighting" within the glass's outline is the cell inside or the
            # glass's own edge taken for it (the tracker may hand the vanished track that blob): neither
            # means the cell came back out, so it must not move where the target was last seen
            seen, head_px = False, None
        self._missing = 0 if seen else self._missing + 1
        if self.state == State.SEARCHING:
            if est.target_id is not None:
                self.target_id = est.target_id
                self._missing = 0
                self._go(State.SELECTING, f"candidate track {est.target_id}")
            elif self._in_state_s() > p.searching.timeout_s:
                self._search_moves += 1
                if self._search_moves > self.cfg.max_search_moves:
                    self.failure_mode = "no_target"
                    self._go(State.RETARGET, "no target found")
                    self._retarget()
                    return
                x, y = self.stage.position_um()
                ang = 2.4 * self._search_moves
                step = self.cfg.search_step_um
                self._track(self.stage.move_to_um(x + step * np.cos(ang), y + step * np.sin(ang)))
                self._entered_s = now
            return
        if self.state == State.SELECTING:
            if est.target_id != self.target_id:
                self._go(State.SEARCHING, "target changed before confirmation")
                self.target_id = None
                return
            self._counter += 1
            if self._counter >= p.selecting.confirm_frames:
                self._pid_x.reset()
                self._pid_y.reset()
                self._offset_px = p.tracking.offset_px
                self._go(State.TRACKING, "target confirmed")
            return
        if self.state in (State.SUCCESS, State.FAILED):
            return
        # From here on the estimate drives motion: refuse stale ones.
        try:
            check_estimate(age, None, self.cfg.safety)
        except SafetyError as exc:
            self.stage.stop()
            self.manipulator.stop()
            log.warning("no motion: %s", exc)
            return
        if self._missing > self.cfg.lost_frames and self.state not in (State.ASPIRATING, State.VERIFYING):
            self._failed_attempt("escaped", f"target lost for {self._missing} frames")
            return
        if head_px is not None:
            self._last_target_px = head_px
            self._last_target_stage_um = self._measured_stage_um(est, head_px)
        reading = self.depth(est) if seen else self.last_depth
        if reading is not None and not (math.isfinite(reading.mean_um) and math.isfinite(reading.std_um)):
            log.warning("depth reading %s is not a number: ignored", reading)
            reading = None
        if reading is not None:
            self.last_depth = reading
        if self.state == State.TRACKING:
            err = self._servo_xy(est, self._offset_px)
            if err is not None and err < p.tracking.tolerance_px:
                self._counter += 1
            if self._counter >= p.tracking.settle_frames:
                self._go(State.POSITIONING_Z, f"XY settled ({err:.1f} px)")
            elif self._in_state_s() > p.tracking.timeout_s:
                self._failed_attempt("tracking_timeout", "could not hold the target in front of the tip")
            return
        if self.state == State.POSITIONING_Z:
            self._servo_xy(est, self._offset_px)
            if not getattr(self.depth, "perceives_depth", True):
                self._go(State.APPROACHING, "no depth perception: the tip stays at its height")
                return
            if self._in_state_s() > p.positioning_z.timeout_s:
                self._failed_attempt("z_timeout", "tip did not reach the target depth")
                return
            if reading is None and self._in_state_s() > p.positioning_z.no_reading_s:
                self._failed_attempt("no_depth", f"no depth reading in {p.positioning_z.no_reading_s:.1f} s: not a"
                                     f" cell to the {self.depth.name} source", counts=False)
                return
            if reading is None or reading.observations < p.positioning_z.min_observations:
                return
            try:
                check_estimate(age, reading.std_um, self.cfg.safety)
            except SafetyError as exc:
                log.info("waiting for a surer depth: %s", exc)
                return
            if self.focus.is_moving():
                return
            if self._depth_obs_after_refocus < 0:  # the focus has just settled: count fresh readings from here
                self._depth_obs_after_refocus = reading.observations + p.positioning_z.min_observations + 2
            if reading.observations < self._depth_obs_after_refocus:
                return
            if getattr(self.depth, "range_limited", False) and self._range_end(reading):
                if not self._refocus_toward(reading):
                    self._failed_attempt("out_of_range", f"cell read at {reading.mean_um:+.2f} um, the edge of the"
                                         " measurable range, with the focus as far as it may go", counts=False)
                return
            dz = self._follow_depth(reading, p.positioning_z.speed_um_s)
            if dz < p.positioning_z.tolerance_um and not self.manipulator.is_moving():
                self._go(State.APPROACHING, f"tip at target depth {reading.mean_um:+.2f} um (+-{reading.std_um:.2f})")
            return
        tip = self._tip_px(est)
        target = np.asarray(est.target_predicted_px) if est.target_predicted_px else None
        dist_um = (np.linalg.norm(target - tip) * self.camera_tf.pixel_size_um
                   if tip is not None and target is not None else None)
        if self.state == State.APPROACHING:
            track = est.track(self.target_id) if self.target_id is not None else None
            swimming, toward = self._swims_toward(track, tip, target)
            # a cell that does not swim is brought to a standoff and drawn in by the flow: pushed on to the
            # opening, a cell lying on the floor would end up beneath the glass
            self._standoff_px = 0.0 if swimming else p.approaching.standoff_um / self.camera_tf.pixel_size_um
            self._offset_px = max(self._standoff_px,
                                  self._offset_px - p.approaching.speed_um_s / self.camera_tf.pixel_size_um * 0.025)
            self._servo_xy(est, self._offset_px)
            if reading is not None:
                self._follow_depth(reading, p.positioning_z.speed_um_s)
            # a cell swimming into the opening is timed by its swimming (the paper); any other cell is
            # brought to the opening by the stage, so the pump starts once it is within half the distance
            if dist_um is not None and dist_um < p.approaching.pump_on_distance_um and (
                    toward or dist_um < 0.5 * p.approaching.pump_on_distance_um):
                self.pump.aspirate(p.aspirating.rate_nl_s)
                self._note_bystanders(est)
                self._drawn_in.reset(tuple(s.axial_um for f in self._recent_bore for s in f))
                self._seen_drawn_in = False
                self._held = HeldInBoreWatch(moved_um=p.verifying.moved_um)
                why = "cell swimming toward the tip" if toward else "cell swimming across or away" if swimming \
                    else "cell not swimming"
                self._go(State.ASPIRATING, f"pump on at {dist_um:.1f} um, {why}")
            elif self._in_state_s() > p.approaching.timeout_s:
                self._failed_attempt("approach_timeout", "cell never came within pump range")
            return
        if self.state == State.ASPIRATING:
            if seen and self._standoff_px > 0 and tip is not None and est.target_px is not None:
                # the flow draws the cell in: follow it sideways and as it comes, never push it back out
                closer_px = float((tip - np.asarray(est.target_px)) @ self._axis)
                self._servo_xy(est, min(self._standoff_px, max(closer_px, 0.0)))
            elif seen:
                self._servo_xy(est, self._standoff_px)
            else:  # its track only coasts now: chasing that would drag the dish, and a cell passing beneath
                self.stage.stop()  # the tip, along under the glass
            entered = self._inside_pipette(head_px, tip, min_axial_px=p.aspirating.capture_radius_um
                                           / self.camera_tf.pixel_size_um)
            # a head missed for a frame or two near the opening has not vanished into it: the detector
            # misses heads swinging out of focus, and a cell passing the opening is seen again beside it
            vanished_at_tip = not seen and self._missing >= self.cfg.vanished_frames and self._last_seen_at_opening(tip)
            drawn = self._drawn_in.update(est.bore)
            if (entered or vanished_at_tip) and self._entry_s is None:
                self._entry_s = self.clock.now()
            elif seen and not entered and drawn is None:  # seen again outside the glass: it had not entered
                self._entry_s = None
                self._held.restart()
            self._held.update(est.capture_time_s, self._bore_points_um(est), pumping=True,
                              counting=self._entry_s is not None or drawn is not None)
            if drawn is not None:
                # a head the flow carries up the bore is inside, whatever the target's track says; aspirating
                # on would carry it out of view. It is already past where it could swim back out.
                self._seen_drawn_in = True
                self._held.credit(drawn.frames)
                self.pump.stop()
                self.stage.stop()
                self._start_verifying(est, tip)
                self._go(State.VERIFYING, f"a head drawn {drawn.last_um:.0f} um up the bore in {drawn.frames}"
                                          " frames; pump stopped")
            elif self._entry_s is not None and self.clock.now() - self._entry_s >= p.aspirating.post_entry_s:
                self.pump.stop()
                self.stage.stop()
                self._start_verifying(est, tip)
                self._go(State.VERIFYING, "head entered the opening; pump stopped")
            elif self._entry_s is None and self._in_state_s() > p.aspirating.timeout_s:
                self.pump.stop()
                if not seen and self._missing >= self.cfg.vanished_frames and self._lost_while_drawn(tip):
                    # the pump ran the whole window with the cell out of sight in front of the opening: only
                    # a look after the tip backs away tells whether the flow took it in (the spot checks)
                    self.stage.stop()
                    self._start_verifying(est, tip)
                    self._go(State.VERIFYING, "cell lost from sight in front of the opening while drawn in;"
                                              " pump stopped")
                else:
                    self._failed_attempt("escaped", "cell did not enter within the aspiration window")
            return
        if self.state == State.VERIFYING:
            self._check_left_behind(est)
            self._held.update(est.capture_time_s, self._bore_points_um(est), pumping=False)
            withdrawn_for_s = now - self._withdrawn_s if self._withdrawn_s is not None else 0.0
            if self._in_state_s() >= p.verifying.hold_s and withdrawn_for_s >= 0.5 * p.verifying.hold_s:
                left_behind = bool(self._spot_checks) and 2 * self._spot_hits > self._spot_checks
                if left_behind and not self._seen_drawn_in:
                    self._failed_attempt("left_behind", "a head still lies where the target was: not aspirated")
                    return
                # a cell that does not swim, drawn in by the flow, can neither swim on beneath the glass nor up
                # out of focus: vanished at the rim (judged against the tip as it was then) and not seen again
                # since, it went in. The line's flow carries it 25-60 um up the bore within the hold, out of
                # the camera's region (held-out seed 1: 20 of 40 immotile cells inside and unseen), so the
                # spot checks above, not a sighting, verify it
                drawn_in = self._standoff_px > 0 and not seen and (
                    self._last_seen_at_opening(self._entry_tip_px) or self._lost_while_drawn(self._entry_tip_px))
                seen_inside = self._held.frames >= p.verifying.min_bore_frames  # control/bore_watch.py
                if seen_inside or drawn_in:
                    self._go(State.SUCCESS, "cell held inside the pipette: " + (
                        f"a head seen in the bore in {self._held.seen} frames, {self._held.frames} not still"
                        if seen_inside
                        else "drawn in by the flow, hidden by the glass since, none left behind") + (
                        "; a head still lies where the target was: another cell went in" if left_behind else ""))
                else:
                    self._failed_attempt("unseen_inside", f"no head seen inside the pipette ({self._held.seen}"
                                         f" frames, {self._held.frames} not still): the cell passed"
                                         " beneath, above or beside the glass, or left")
            return

    def _range_end(self, reading: DepthReading) -> int:
        """+1 or -1 when ``reading`` lies within ``edge_margin_um`` of the top or bottom of its source's range
        (the cell may lie well beyond it), else 0."""
        margin = self.cfg.params.positioning_z.edge_margin_um
        lo, hi = reading.range_um
        return 1 if reading.mean_um >= hi - margin else -1 if reading.mean_um <= lo + margin else 0

    def _refocus_toward(self, reading: DepthReading) -> bool:
        """Step the focus toward a cell read at the edge of the depth range, so that it falls inside; the
        reading then restarts (perception restarts its depth filter when the focus moves). False when the
        focus may go no further from where the trial began."""
        pz = self.cfg.params.positioning_z
        goal = self.focus.z_um() + self._range_end(reading) * pz.refocus_step_um
        if pz.refocus_step_um <= 0 or abs(goal - self._focus_start_um) > pz.max_refocus_um + 1e-6 \
                or not self.focus.limits.contains(goal):
            return False
        self._track(self.focus.move_to_um(goal))
        self._depth_obs_after_refocus = -1  # set once the focus has settled
        self._z_goal = None
        self._entered_s = self.clock.now()  # the Z positioning starts over at the new focus
        log.info("focus to %.2f um: cell read at %+.2f um, the edge of the depth range", goal, reading.mean_um)
        return True

    def _start_verifying(self, est: Estimate, tip_px: np.ndarray | None) -> None:
        """Remember where the target was and where the opening was, and back the tip away along its axis
        (the stage stays still)."""
        self._spot_stage_um, self._entry_tip_px = self._last_target_stage_um, tip_px
        self._entry_tip_stage_um = np.asarray(est.tip_stage_um) if est.tip_stage_um is not None else None
        self._spot_checks = self._spot_hits = 0
        self._withdrawn_s = None
        withdraw = self.cfg.params.verifying.withdraw_um
        if withdraw > 0 and tip_px is not None:
            step = self.camera_tf.px_to_lab_um(tip_px + self._axis)[0] - self.camera_tf.px_to_lab_um(tip_px)[0]
            tip = self.tip_lab_um()
            self._withdrawn_from_lab = tip
            try:
                self.move_tip_lab([*(tip[:2] + step / np.linalg.norm(step) * withdraw), tip[2]])
            except SafetyError as exc:  # verify in place: the glass may then hide what stayed behind
                log.warning("tip not backed away for verification: %s", exc)

    def _check_left_behind(self, est: Estimate) -> None:
        """Once the tip has backed away, count frames (taken after it stopped) with a head on the way from
        where the target was last seen to where the opening was: the flow draws a cell it cannot take in
        up to the rim. The stage may have moved since, so both points are kept in the sample frame and
        compared with each frame's heads through the tip, whose image and sample positions that frame
        carries. An aspirated cell went with the pipette, ``withdraw_um`` further on."""
        if self.manipulator.is_moving():
            return
        if self._withdrawn_s is None:
            self._withdrawn_s = self.clock.now()
        if self._spot_stage_um is None or est.capture_time_s < self._withdrawn_s or est.tip is None \
                or est.tip_stage_um is None:
            return
        start = self._spot_stage_um
        end = self._entry_tip_stage_um if self._entry_tip_stage_um is not None else start
        vp = self.cfg.params.verifying
        heads_um = [h for h in self._heads_sample_um(est)
                    if not any(np.linalg.norm(h - b) < vp.bystander_radius_um for b in self._bystanders_um)]
        self._spot_checks += 1
        self._spot_hits += any(_distance_to_segment(h, start, end) < vp.left_behind_radius_um for h in heads_um)

    def _bore_points_um(self, est: Estimate) -> list[BorePoint]:
        """The frame's sightings in the bore, each where it lies in the image and in the dish (lab and sample
        frames, um), placed along the pipette's axis from the tip (whose image and sample positions the
        frame carries), and how far up the bore; none without a tip."""
        if not est.bore or est.tip is None or est.tip_stage_um is None:
            return []
        tip_px = np.asarray(est.tip.position_px, dtype=float)
        tip_lab = self.camera_tf.px_to_lab_um(tip_px)[0]
        up = self.camera_tf.px_to_lab_um(tip_px + self._axis)[0] - tip_lab
        up = up / np.linalg.norm(up)
        tip_dish = np.asarray(est.tip_stage_um, dtype=float)
        return [BorePoint(tip_lab + s.axial_um * up, tip_dish + s.axial_um * up, s.axial_um) for s in est.bore]

    def _heads_sample_um(self, est: Estimate) -> np.ndarray:
        """The frame's detected heads in the sample frame, placed through the tip (whose image and sample
        positions the frame carries); empty without a tip."""
        if est.tip is None or est.tip_stage_um is None or not est.detections:
            return np.empty((0, 2))
        px = np.array([d.centroid_px for d in est.detections], dtype=float)
        tf = self.camera_tf
        return np.asarray(est.tip_stage_um) + tf.px_to_lab_um(px) - tf.px_to_lab_um(np.asarray(est.tip.position_px))[0]

    def _note_bystanders(self, est: Estimate) -> None:
        """When the pump starts, remember the other heads around (debris, still cells): one of them lying
        on the target's way to the opening afterwards is not the target left behind."""
        heads = self._heads_sample_um(est)
        if self._last_target_stage_um is not None and len(heads):
            far = np.linalg.norm(heads - self._last_target_stage_um, axis=1) >= self.cfg.params.verifying.left_behind_radius_um
            heads = heads[far]
        self._bystanders_um = heads

    @staticmethod
    def _head_px(est: Estimate) -> np.ndarray | None:
        """Where this frame's detection of the target lies (image px); None while its track coasts. Where the
        head was seen, not the track's filtered position: the constant-velocity filter follows a swinging,
        turning head with a lag of several um, and a coasting track runs on along its last heading, so a
        cell that turned away in front of the opening would be "last seen" entering it."""
        track = est.track(est.target_id) if est.target_id is not None else None
        if track is None or track.detection is None or track.detection >= len(est.detections):
            return None
        return np.asarray(est.detections[track.detection].centroid_px, dtype=float)

    def _measured_stage_um(self, est: Estimate, head_px: np.ndarray) -> np.ndarray | None:
        """The head seen at ``head_px`` in the sample frame (through the latency-predicted target, whose image
        and sample positions the estimate carries)."""
        if est.target_stage_um is None or est.target_predicted_px is None:
            return None
        back = self.camera_tf.px_to_lab_um(head_px)[0] - self.camera_tf.px_to_lab_um(est.target_predicted_px)[0]
        return np.asarray(est.target_stage_um) + back

    def _inside_pipette(self, p_px: np.ndarray | None, tip_px: np.ndarray | None, reach_px: float = 200.0,
                        min_axial_px: float = 0.0, lateral_margin_px: float = 0.0) -> bool:
        """Whether an image point lies inside the pipette bore (past ``min_axial_px`` from the opening)."""
        if p_px is None or tip_px is None:
            return False
        rel = p_px - tip_px
        axial = float(rel @ self._axis)
        lateral = abs(float(rel @ np.array([-self._axis[1], self._axis[0]])))
        bore_px = self.cfg.pipette_inner_radius_um / self.camera_tf.pixel_size_um
        return min_axial_px <= axial <= reach_px and lateral < bore_px + lateral_margin_px

    def _within_glass(self, p_px: np.ndarray, tip_px: np.ndarray | None) -> bool:
        """Whether an image point lies behind the opening, within the pipette's outline (bore and wall,
        plus 1 um)."""
        wall_px = (self.cfg.pipette_wall_um + 1.0) / self.camera_tf.pixel_size_um
        return self._inside_pipette(p_px, tip_px, reach_px=1200, lateral_margin_px=wall_px)

    def _last_seen_at_opening(self, tip_px: np.ndarray | None) -> bool:
        """Whether the target was last seen where the flow draws it in: just in front of the opening
        (within half the pump-on distance, across the bore plus 1 um) or inside. The glass hides a head
        that has entered, so vanishing there is how an entry looks. A cell that does not swim comes in
        slowly, seen until its head nears the rim: lost farther out, it lies in the glass's shadow, and
        only a closer sighting counts."""
        p = self.cfg.params
        reach_um = p.aspirating.drawn_entry_reach_um if self._standoff_px > 0 else 0.5 * p.approaching.pump_on_distance_um
        return self._last_seen_within(tip_px, reach_um)

    def _last_seen_within(self, tip_px: np.ndarray | None, reach_um: float) -> bool:
        """Whether the target was last seen inside the pipette or in front of the opening, within
        ``reach_um`` of it and across the bore plus 1 um."""
        um = 1.0 / self.camera_tf.pixel_size_um
        return self._inside_pipette(self._last_target_px, tip_px, reach_px=1200, min_axial_px=-reach_um * um,
                                    lateral_margin_px=1.0 * um)

    def _lost_while_drawn(self, tip_px: np.ndarray | None) -> bool:
        """Whether a cell that does not swim was last seen in front of the opening, on its axis, within the
        pump-on distance: where the stage brings it and the flow draws it in. Beside an opening held above
        the focal plane (a cell on the floor) the out-of-focus glass's halo reaches several um past the
        rim, and a faint in-focus head there can be lost from sight 5-10 um out, before it enters; vanishing
        there is no proof of an entry (``_last_seen_at_opening``), but no escape either: the spot checks
        after the tip backs away decide."""
        return self._standoff_px > 0 and self._last_seen_within(tip_px, self.cfg.params.approaching.pump_on_distance_um)

    def _swims_toward(self, track, tip_px: np.ndarray | None, target_px: np.ndarray | None) -> tuple[bool, bool]:
        """(whether the cell swims, whether it swims into the opening: toward the tip, along the axis)."""
        if track is None or tip_px is None or target_px is None:
            return False, False
        v = np.asarray(track.velocity_um_s)
        speed = float(np.linalg.norm(v))
        if speed < self.cfg.swimming_um_s:
            return False, False
        to_tip = tip_px - target_px
        along = float(np.asarray(track.velocity_px_s) @ self._axis) / max(float(np.linalg.norm(track.velocity_px_s)), 1e-9)
        return True, float(np.asarray(track.velocity_px_s) @ to_tip) > 0 and along > 0.5

    def _failed_attempt(self, mode: str, reason: str, counts: bool = True) -> None:
        """Give up on this target (the app layer rejects its track); ``counts``: it used up an attempt
        (a cell passed over before the tip went for it does not)."""
        self.pump.stop()
        self.failure_mode = mode
        self._go(State.RETARGET, reason)
        self._retarget(counts)

    def _retarget(self, counts: bool = True) -> None:
        self._attempts += int(counts)
        if self._withdrawn_from_lab is not None:  # a failed verification: the tip returns to where it was,
            back, self._withdrawn_from_lab = self._withdrawn_from_lab, None  # else each attempt leaves it
            try:  # further along its axis, out of the field of view at last
                self.move_tip_lab(back)
            except SafetyError as exc:
                log.warning("tip not returned after verification: %s", exc)
        self.target_id = None
        self.last_depth = None
        self._z_goal = None
        self._last_target_px = None
        self._entry_s, self._seen_drawn_in = None, False
        self._last_target_stage_um = self._spot_stage_um = self._entry_tip_px = self._entry_tip_stage_um = None
        self._depth_obs_after_refocus = 0
        if self._attempts >= self.cfg.params.retarget.max_attempts or self.failure_mode == "no_target":
            self._go(State.FAILED, f"{self._attempts} attempts used ({self.failure_mode})")
        else:
            self._go(State.SEARCHING, f"attempt {self._attempts + 1}")


def _distance_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))
