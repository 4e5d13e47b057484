"""The uMp driver through the real ``sensapex`` package and its bundled libum, against an SMCP v1 server
on loopback UDP that moves the twin's manipulator."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("sensapex")

from drivers.errors import DeviceError, LimitError  # noqa: E402
from drivers.sensapex_ump import SensapexManipulator  # noqa: E402
from drivers.stop import ESTOP  # noqa: E402
from sim.protocols.smcp import GOTO_POS, STOP, SmcpServer  # noqa: E402


@pytest.fixture
def ump(twin, context):
    server = SmcpServer(twin.manipulator)
    device = SensapexManipulator("manipulator", SensapexManipulator.Settings(address="127.0.0.1"), context)
    yield device, server, twin.manipulator
    device.close()
    server.close()


def test_discovers_the_device_and_reads_its_position(ump):
    device, _server, twin = ump
    assert np.allclose(device.position_um(), twin.position_um(), atol=0.01)


def test_an_unknown_device_id_names_what_was_found(twin, context):
    server = SmcpServer(twin.manipulator)
    try:
        with pytest.raises(DeviceError, match=r"no uMp with id 7 on 127.0.0.1 \(found: \[1\]\)"):
            SensapexManipulator("manipulator", SensapexManipulator.Settings(address="127.0.0.1", device_id=7),
                                context)
    finally:
        server.close()


def test_a_move_reaches_its_target_on_the_twin(ump):
    device, _server, twin = ump
    target = device.position_um() + np.array([12.0, -5.0, 3.0])
    device.move_to_um(target, 200.0).wait(5.0)
    assert np.allclose(twin.position_um(), target, atol=0.06)
    assert not device.is_moving()


def test_a_target_outside_the_limits_sends_nothing(ump):
    device, server, _twin = ump
    before = list(server.requests_received)
    with pytest.raises(LimitError, match="z=25000.00 um outside limits"):
        device.move_to_um([10000, 10000, 25000], 100)
    assert GOTO_POS not in server.requests_received[len(before):]


def test_speeds_below_one_um_s_are_stepped_at_the_mean_speed(ump):
    device, server, twin = ump
    target = device.position_um() + np.array([0.6, 0.0, 0.0])
    t0 = time.monotonic()
    device.move_to_um(target, 0.5).wait(10.0)
    took = time.monotonic() - t0
    assert np.allclose(twin.position_um(), target, atol=0.06)
    assert server.requests_received.count(GOTO_POS) >= 3  # three 0.2 um steps
    assert took >= 1.0  # paced: 0.6 um at 0.5 um/s = 1.2 s (no upper bound: the machine's load adds to it)


def test_a_drive_that_stops_short_is_a_device_error(ump):
    device, server, twin = ump
    start = device.position_um()
    server.faults.stall_drives = 1  # the drive stops halfway and reports failure
    with pytest.raises(DeviceError, match="manipulator: move_to_um: the uMp reported a failed drive"):
        device.move_to_um(start + [60, 0, 0], 500).wait(10.0)
    assert not twin.is_moving()
    assert np.allclose(twin.position_um(), start + [30, 0, 0], atol=0.06)
    device.move_to_um(start, 500).wait(5.0)  # the next move works


def test_a_device_that_goes_silent_mid_move_is_a_device_error_and_stop_is_sent(ump):
    device, server, _twin = ump
    handle = device.move_to_um(device.position_um() + [300, 0, 0], 100)
    time.sleep(0.1)
    server.faults.silent = True
    heard = len(server.requests_received)
    with pytest.raises(DeviceError, match="no reply from the uMp during the move"):
        handle.wait(5.0)
    assert STOP in server.requests_received[heard:]  # the driver tried to stop it


def test_garbage_replies_are_survived_until_they_are_all_there_is(ump):
    device, server, _twin = ump
    server.faults.garbage_replies = 1
    device.ping()  # libum drops the bad datagram and retransmits
    server.faults.garbage_replies = 1000
    with pytest.raises(DeviceError, match="manipulator: ping: libum: .*Invalid response"):
        device.ping()


def test_the_emergency_stop_halts_a_move_in_flight(ump):
    device, _server, twin = ump
    start = device.position_um()
    device.move_to_um(start + [500, 0, 0], 200)
    time.sleep(0.2)
    ESTOP.trigger("test")
    time.sleep(0.1)
    assert not twin.is_moving()
    travelled = twin.position_um()[0] - start[0]
    assert 5 < travelled < 200
    with pytest.raises(DeviceError, match="emergency stop is active"):
        device.move_to_um(start, 200)


class _Trial:
    """The supervisor's view of a controller: running until it is told of a fault."""

    def __init__(self) -> None:
        self.done = False
        self.faults: list[tuple[str, str]] = []

    def fault(self, device: str, detail: str) -> None:
        self.faults.append((device, detail))
        self.done = True


@pytest.fixture
def supervised_ump(twin, context):
    """A uMp driver against its simulator (0.5 s reply timeout), watched by a supervisor (silence 0.75 s)
    on behalf of a running trial: (device, server, supervisor, trial)."""
    from control.supervisor import Supervisor, SupervisorConfig

    server = SmcpServer(twin.manipulator)
    device = SensapexManipulator("manipulator", SensapexManipulator.Settings(address="127.0.0.1",
                                                                                 reply_timeout_s=0.5), context)
    sup = Supervisor(None, device, None, None, twin.clock, SupervisorConfig(silence_s=0.75))
    trial = _Trial()
    sup.watch(trial)
    yield device, server, sup, trial
    sup.close()
    device.close()
    server.close()


def _until_a_fault(sup, trial, timeout_s: float) -> tuple[str, str]:
    give_up = time.monotonic() + timeout_s
    while not trial.faults and time.monotonic() < give_up:
        sup.check()
        time.sleep(0.02)
    (fault,) = trial.faults
    return fault


def test_a_hung_ump_trips_the_supervisor_on_silence_not_on_libums_longer_ping_timeout(supervised_ump):
    """A uMp that stops answering trips the supervisor for the manipulator: the keepalive's failed ping
    (libum gives up after its reply timeout) or the unanswered ping's wait, whichever comes first; the
    unanswered ping keeps counting after the trip."""
    device, server, sup, trial = supervised_ump
    sup.check()
    assert device.silent_s() < 0.75 and not trial.faults  # a healthy link: each ping answered at once
    server.faults.silent = True
    name, detail = _until_a_fault(sup, trial, 10.0)
    assert name == "manipulator" and "no reply" in detail
    assert 0.5 < device.silent_s() < 5.0


def test_silence_counts_a_pings_wait_not_the_pause_between_pings(supervised_ump):
    """Between pings nothing waits (0 s); a ping queued behind a call that holds libum's lock (a call to a
    stalled uMp) counts from when it was asked, and the supervisor trips on it before any call fails."""
    device, _, sup, trial = supervised_ump
    samples = []
    for _ in range(40):  # one second of a healthy link, pinged every 0.25 s
        samples.append(device.silent_s())
        time.sleep(0.025)
    assert max(samples) < 0.2 and min(samples) == 0.0
    with device._ump.lock:  # the stalled call: every other libum call, the keepalive's ping too, waits
        name, detail = _until_a_fault(sup, trial, 5.0)
        assert name == "manipulator" and "no reply for" in detail and "limit 0.75 s" in detail
