"""The supervisor and the controller's truthful outcomes on the simulated rig (lockstep clock: the checks
run when the test calls them, so every time here is simulated and exact)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from calibration.transforms import CameraStageTransform, ManipulatorTransform
from control.aspiration import AspirationController, DepthReading, FocalPlaneDepth, NoDepth
from control.states import MachineParams, State
from control.supervisor import Supervisor, SupervisorConfig
from drivers.errors import DeviceError
from drivers.interfaces import MoveHandle
from perception.runtime.estimate import Estimate, HeadDetection, TipEstimate, TrackState


def controller(rig, depth=None) -> AspirationController:
    ms = rig.manipulator.settings
    tf = ManipulatorTransform(np.eye(3), np.array(ms.mount_origin_lab_um) - np.array(ms.home_um))
    cam = CameraStageTransform(rig.frames.pixel_size_um, 1920, 1200)
    return AspirationController(rig.stage, rig.manipulator, rig.pump, rig.focus, rig.clock, cam, tf, depth or NoDepth())


def estimate(rig, target=(400.0, 600.0), tip=(1165.0, 600.0)) -> Estimate:
    now = rig.clock.now()
    track = TrackState(7, (0.0, 0.0), (-40.0, 0.0), 30, 0, 0.9, "rapid_progressive", 40.0, 90.0,
                       position_px=target, velocity_px_s=(-270.0, 0.0), detection=0)
    return Estimate(1, now, now, {}, [HeadDetection(target, 0.0, 400.0, 0.9, 1.6)], [track], 7, target, target, None,
                    None, TipEstimate(tip, 0.9), None)


def supervised(rig, **config) -> tuple[AspirationController, Supervisor]:
    ctl = controller(rig)
    cfg = SupervisorConfig(**config)
    sup = Supervisor(rig.stage, rig.manipulator, rig.pump, rig.focus, rig.clock, cfg,
                     cfg.pump_deadline_s(ctl.cfg.params))
    sup.attach(rig.frames)
    sup.watch(ctl)
    ctl.start()
    return ctl, sup


def test_the_pump_deadline_is_the_aspiration_window():
    params = MachineParams()
    assert SupervisorConfig().pump_deadline_s(params) == pytest.approx(2.5 + 0.4 + 0.25)
    assert SupervisorConfig(pump_max_on_s=1.0).pump_deadline_s(params) == 1.0


def test_a_pump_running_past_its_deadline_ends_the_trial_as_a_pump_fault(sim_rig):
    ctl, sup = supervised(sim_rig)
    sim_rig.pump.aspirate(1.2)
    started = sim_rig.clock.now()
    while sim_rig.pump.rate_nl_s() != 0 and sim_rig.clock.now() - started < 10:
        sim_rig.clock.sleep(0.02)
        sup.beat("camera")  # everything else alive: only the deadline is at stake
        sup.estimate(estimate(sim_rig))
        sup.check()
    assert sim_rig.clock.now() - started == pytest.approx(sup.pump_deadline_s, abs=0.03)
    assert ctl.state == State.FAULT and ctl.failure_mode == "fault:pump" and "past its deadline" in ctl.fault_message


def test_the_pump_deadline_holds_outside_a_trial_and_cannot_be_extended(sim_rig):
    sup = Supervisor(sim_rig.stage, sim_rig.manipulator, sim_rig.pump, sim_rig.focus, sim_rig.clock,
                     pump_deadline_s=1.0)
    sim_rig.pump.aspirate(1.2)
    started = sim_rig.clock.now()
    while sim_rig.pump.rate_nl_s() != 0 and sim_rig.clock.now() - started < 10:
        sim_rig.clock.sleep(0.02)
        sim_rig.pump.aspirate(1.2)  # commanded again and again: the deadline counts from the first start
        sup.check()
    assert sim_rig.clock.now() - started == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("source", ["camera", "stage", "focus"])
def test_a_request_left_unanswered_past_its_limit_is_a_fault_of_that_device(sim_rig, source):
    ctl, sup = supervised(sim_rig, camera_loss_s=0.5, stage_loss_s=0.5, focus_loss_s=0.5)
    for name in ("camera", "stage", "focus"):
        sup.expect(name)
        sup.beat(name)  # each heard from once
    sim_rig.pump.aspirate(1.2)
    sup.expect(source)  # and now asked, with no answer
    for _ in range(40):
        sim_rig.clock.sleep(0.02)
        sup.estimate(estimate(sim_rig))
        sup.check()
    assert ctl.state == State.FAULT and ctl.failure_mode == f"fault:{source}"
    assert f"{source}: no " in ctl.fault_message and "(limit 0.5 s)" in ctl.fault_message
    assert sim_rig.pump.rate_nl_s() == 0.0


def test_a_slow_loop_is_not_a_dead_camera(sim_rig):
    """Time between answers does not count, only time waiting for one."""
    ctl, sup = supervised(sim_rig, camera_loss_s=0.5, perception_loss_s=5.0)
    for _ in range(5):
        sup.expect("camera")
        sim_rig.clock.sleep(0.05)
        sup.beat("camera")
        sim_rig.clock.sleep(0.8)  # perception and the controller take their time
        sup.check()
    assert ctl.state == State.SEARCHING


def test_stale_estimates_are_lost_perception(sim_rig):
    ctl, sup = supervised(sim_rig, perception_loss_s=0.5)
    sup.estimate(estimate(sim_rig))
    for _ in range(40):
        est = estimate(sim_rig)
        sim_rig.clock.sleep(0.3)  # each estimate 0.3 s old by the time it is handed on
        sup.estimate(est)
        sup.check()
    assert ctl.failure_mode == "fault:perception" and "no estimate fresh enough" in ctl.fault_message
    assert "ms old (limit 150 ms)" in ctl.fault_message


def test_a_fault_reported_by_a_driver_thread_ends_the_trial(sim_rig):
    ctl, sup = supervised(sim_rig)
    sim_rig.pump.aspirate(1.2)
    sim_rig.pump.report_fault(DeviceError("pump", "keepalive", "no reply to '00' within 0.5 s"))
    assert ctl.state == State.SEARCHING  # recorded by the reporting thread, acted on by the supervisor's
    sup.check()
    assert ctl.state == State.FAULT and ctl.failure_mode == "fault:pump"
    assert ctl.fault_message == "pump: keepalive: no reply to '00' within 0.5 s"
    assert sim_rig.pump.rate_nl_s() == 0.0
    assert [e.dst for e in ctl.events][-1] == State.FAULT


def test_a_fault_reported_for_a_move_in_progress_ends_the_trial(sim_rig):
    ctl = controller(sim_rig)
    ctl.start()
    reported = {"fault": None}
    handle = MoveHandle(sim_rig.stage, "move_to_um", lambda: False, sim_rig.clock,
                        fault=lambda: reported["fault"])
    ctl._track(handle)
    ctl.step(estimate(sim_rig))
    assert ctl.state == State.SELECTING
    reported["fault"] = "controller error E,3 (no drive) to the move"
    ctl.step(estimate(sim_rig))
    assert ctl.state == State.FAULT and ctl.failure_mode == "fault:stage"
    assert ctl.fault_message == "stage: move_to_um: controller error E,3 (no drive) to the move"


def test_a_device_error_in_a_step_names_the_device(sim_rig):
    ctl = controller(sim_rig)
    ctl.start()
    for _ in range(6):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
    assert ctl.state == State.TRACKING

    def dead(*args, **kwargs):
        raise DeviceError("stage", "position_um", "no reply to 'P' within 0.5 s")

    sim_rig.stage.position_um = dead
    sim_rig.clock.sleep(0.025)
    ctl.step(estimate(sim_rig))
    assert ctl.state == State.FAULT and ctl.failure_mode == "fault:stage"
    assert ctl.fault_message == "stage: position_um: no reply to 'P' within 0.5 s"


class NanDepth:
    name = "broken"

    def __call__(self, est):
        return DepthReading(float("nan"), 0.1, 50)


def test_a_nan_depth_reading_is_no_reading(sim_rig):
    """Positioning the tip in Z on a depth that is not a number: no reading, so the target is passed over
    (never a SafetyError out of step(), never a tip sent to NaN)."""
    ctl = controller(sim_rig, NanDepth())
    ctl.start()
    for _ in range(6):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
    assert ctl.state == State.TRACKING
    ctl.state, ctl._entered_s = State.POSITIONING_Z, sim_rig.clock.now()  # as if XY had settled
    tip_before = ctl.tip_lab_um()
    for _ in range(30):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
    assert ctl.failure_mode == "no_depth" and not any(e.dst == State.APPROACHING for e in ctl.events)
    assert any(e.reason.startswith("no depth reading") for e in ctl.events)
    assert np.allclose(ctl.tip_lab_um(), tip_before, atol=0.1)


def test_a_refused_motion_ends_the_attempt_not_the_campaign(sim_rig):
    ctl = controller(sim_rig, depth=FocalPlaneDepth())
    ctl.start()
    for _ in range(6):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
    ctl.cfg.safety = ctl.cfg.safety.model_copy(update={"workspace_um": ((-1.0, 1.0), (-1.0, 1.0), (0.0, 1.0))})  # nowhere safe
    ctl.state = State.POSITIONING_Z
    ctl.last_depth = DepthReading(0.5, 0.1, 50)
    ctl._depth_obs_after_refocus = 0
    ctl.step(estimate(sim_rig))
    assert ctl.failure_mode == "refused" and ctl.state in (State.SEARCHING, State.FAILED)
    assert any(e.reason.startswith("motion refused: tip target") for e in ctl.events)


def test_the_emergency_stop_ends_a_trial_as_such(sim_rig):
    from drivers.stop import ESTOP

    ctl = controller(sim_rig)
    ctl.start()
    ESTOP.trigger("test")
    ctl.step(estimate(sim_rig))
    assert ctl.state == State.FAULT and ctl.failure_mode == "estop" and "emergency stop (test)" in ctl.fault_message


def test_a_pump_whose_stop_hangs_does_not_hold_the_pipette_at_the_cell(sim_rig, monkeypatch, caplog):
    """After a fault the pipette's retraction waits for the manipulator's stop only: a pump link that
    never confirms its stop is reported as such once the retraction is on its way, not before."""
    ctl, _ = supervised(sim_rig)
    released = threading.Event()
    monkeypatch.setattr(sim_rig.pump, "stop", lambda: released.wait(10.0))  # a link that swallows the stop
    caplog.set_level(logging.INFO, logger="control.aspiration")
    try:
        ctl.fault("pump", "pump: keepalive: no reply to '00' within 0.5 s")
    finally:
        released.set()
    messages = [r.getMessage() for r in caplog.records]
    retracted = next(i for i, m in enumerate(messages) if m.startswith("retracting the pipette"))
    reported = next(i for i, m in enumerate(messages) if m.startswith("pump: stop failed: stop not confirmed"))
    assert retracted < reported
    assert sim_rig.manipulator.is_moving() and ctl.state == State.FAULT and ctl.failure_mode == "fault:pump"
