import threading
import time

import pytest

from drivers.clock import LockstepClock, RealClock
from drivers.stop import ESTOP, EmergencyStop, StopBatch, Stopped, StopToken, Task


def test_lockstep_clock_moves_only_when_advanced():
    clock = LockstepClock()
    assert clock.now() == 0.0
    clock.sleep(0.25)
    clock.advance(0.5)
    assert clock.now() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="negative"):
        clock.advance(-1)


def test_lockstep_wait_until_is_deterministic():
    clock = LockstepClock()
    assert clock.wait_until(lambda: clock.now() >= 100.0, timeout_s=200.0, poll_s=0.01)
    assert not clock.wait_until(lambda: False, timeout_s=1.0)
    assert clock.now() == pytest.approx(101.0, abs=0.02)


def test_stop_token_ends_a_real_sleep_quickly():
    token = StopToken(RealClock())
    threading.Timer(0.05, token.stop, args=("operator",)).start()
    t0 = time.perf_counter()
    with pytest.raises(Stopped, match="operator"):
        token.sleep(60.0)
    assert time.perf_counter() - t0 < 30.0  # ended by the stop, long before the sleep's end


def test_child_token_follows_parent_and_estop():
    estop = EmergencyStop()
    parent = StopToken(LockstepClock(), estop=estop)
    child = parent.child()
    assert not child.stopped
    parent.stop("campaign aborted")
    assert child.stopped and child.reason == "campaign aborted"
    other = StopToken(LockstepClock(), estop=estop)
    estop.trigger("test")
    with pytest.raises(Stopped, match="emergency stop"):
        other.check()


def test_emergency_stop_halts_every_device_even_if_one_fails():
    estop = EmergencyStop()

    class Dev:
        def __init__(self, name, fail=False):
            self.name, self.fail, self.stopped = name, fail, False

        def stop(self):
            self.stopped = True
            if self.fail:
                raise RuntimeError("serial port gone")

    devices = [Dev("a"), Dev("b", fail=True), Dev("c")]
    for d in devices:
        estop.register(d)
    seen = []
    estop.triggered_changed.connect(lambda on, why: seen.append((on, why)))
    failed = estop.trigger("button")
    assert failed == ["b"]
    assert all(d.stopped for d in devices)
    assert estop.triggered and seen == [(True, "button")]
    estop.reset()
    assert not estop.triggered


class _Dev:
    def __init__(self, name: str, hang: threading.Event | None = None) -> None:
        self.name, self.hang, self.stopped = name, hang, False

    def stop(self) -> None:
        self.stopped = True
        if self.hang is not None:
            self.hang.wait(10.0)


def test_devices_that_share_a_name_are_all_stopped():
    """A driver and the twin it rehearses against are both "manipulator": each gets its stop."""
    devices = [_Dev("manipulator"), _Dev("manipulator"), _Dev("pump")]
    assert StopBatch(devices).confirm(1.0) == {}
    assert all(d.stopped for d in devices)


def test_a_stop_batch_confirms_the_devices_asked_for_without_waiting_on_a_hung_one():
    hung = threading.Event()
    pump, manipulator = _Dev("pump", hang=hung), _Dev("manipulator")
    try:
        stops = StopBatch([pump, manipulator])
        assert stops.confirm(5.0, only=[manipulator]) == {}
        assert pump.stopped and stops.confirm(0.05) == {"pump": "stop not confirmed within 0.05 s"}
    finally:
        hung.set()


def test_task_returns_result_and_reraises_errors():
    clock = RealClock()
    ok = Task("sum", lambda tok: 1 + 2, StopToken(clock)).start()
    assert ok.result(timeout_s=2) == 3
    bad = Task("bad", lambda tok: 1 / 0, StopToken(clock)).start()
    with pytest.raises(ZeroDivisionError):
        bad.result(timeout_s=2)

    def long(tok):
        tok.sleep(10)

    task = Task("long", long, StopToken(clock)).start()
    task.stop("enough")
    with pytest.raises(Stopped):
        task.result(timeout_s=2)


def test_global_estop_refuses_motion_until_reset(sim_rig):
    ESTOP.trigger("test")
    from drivers.errors import DeviceError

    with pytest.raises(DeviceError, match="emergency stop is active"):
        sim_rig.stage.move_to_um(10, 10)
    ESTOP.reset()
    sim_rig.stage.move_to_um(10, 10).wait(5)
    assert sim_rig.stage.position_um() == pytest.approx((10, 10), abs=0.1)
