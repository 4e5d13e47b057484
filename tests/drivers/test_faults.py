"""Faults and stops through the real drivers against their protocol servers: a stop is never queued behind
a query in flight, every device fault reaches the caller as a DeviceError or the device's ``faulted``
signal, and the emergency stop reaches every device in parallel. Orderings, not timings, are asserted
(the figures are benchmarks/fault_injection.py's)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from drivers.errors import DeviceError
from drivers.newera import NewEraPump
from drivers.pi_piezo import PiezoFocus
from drivers.prior import ProScanStage
from drivers.stop import ESTOP, EmergencyStop
from sim.protocols.faults import FAULTS
from sim.protocols.newera import NewEraServer
from sim.protocols.pi_gcs import GcsServer
from sim.protocols.proscan import ProScanServer

SLOW = 5.0  # a reply timeout longer than the test needs: a query stalled on it stays in flight


@pytest.fixture
def hardware(twin):
    """The twin's devices answer only to their own stop, as hardware behind a link would."""
    for device in (twin.stage, twin.focus, twin.manipulator, twin.pump):
        device.use_estop(EmergencyStop())
    return twin


def faults_seen(device) -> list[DeviceError]:
    seen: list[DeviceError] = []
    device.faulted.connect(seen.append)
    return seen


class InFlight:
    """A query running on its own thread (it will stall: the server answers nothing)."""

    def __init__(self, call) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call) -> None:
        try:
            call()
        except BaseException as exc:  # kept for the test to look at
            self.error = exc


def received(server, what) -> bool:
    return any(what(line) for _, line in list(server.received))


def wait(predicate, timeout_s: float = 10.0) -> None:
    from drivers.clock import RealClock

    assert RealClock().wait_until(predicate, timeout_s, 0.002), "condition not met in time"


# ----- ProScan -------------------------------------------------------------------------------------------
def test_stage_stop_goes_out_past_a_stalled_query_and_is_obeyed(hardware, connect):
    server = ProScanServer(hardware.stage)
    stage = connect(server, ProScanStage, reply_timeout_s=SLOW)
    stage.move_to_um(3000.0, 0.0, 2000.0)
    wait(lambda: hardware.stage.is_moving())
    server.inject("stall")
    heard = len(server.received)
    query = InFlight(stage.position_um)
    wait(lambda: any(line == "P" for _, line in list(server.received)[heard:]))
    stopping = InFlight(stage.stop)
    wait(lambda: received(server, lambda line: line == "K"))
    assert query.thread.is_alive()  # K reached the controller while P still waited for its reply
    wait(lambda: not hardware.stage.is_moving())
    stopping.thread.join(2 * SLOW)
    assert isinstance(stopping.error, DeviceError) and "K not confirmed" in str(stopping.error)


def test_an_error_code_to_a_move_is_a_fault_of_that_move(hardware, connect):
    server = ProScanServer(hardware.stage)
    stage = connect(server, ProScanStage, reply_timeout_s=0.3)
    seen = faults_seen(stage)
    stage.move_to_um(100.0, 0.0, 2000.0).wait(5.0)  # sets the speed: the next move at it is a bare G
    server.inject("error_code")
    handle = stage.move_to_um(200.0, 0.0, 2000.0)
    wait(lambda: bool(seen))
    with pytest.raises(DeviceError, match=r"stage: move_to_um: controller error E,3 \(no drive\)"):
        handle.check()
    assert seen and seen[0].device == "stage"


def test_a_pulled_stage_cable_is_reported_at_once(hardware, connect):
    server = ProScanServer(hardware.stage)
    stage = connect(server, ProScanStage, reply_timeout_s=0.3)
    seen = faults_seen(stage)
    server.inject("disconnect")
    wait(lambda: bool(seen))
    assert "serial link lost" in str(seen[0])
    with pytest.raises(DeviceError, match="stage: stop: K not confirmed: serial link lost"):
        stage.stop()


# ----- NE-1000 -------------------------------------------------------------------------------------------
@pytest.fixture
def safe_pump(hardware, connect):
    server = NewEraServer(hardware.pump, safe_timeout_s=1)
    return server, connect(server, NewEraPump, reply_timeout_s=0.3)


def test_safe_mode_is_the_default(safe_pump):
    server, pump = safe_pump
    assert pump.s.framing == "safe" and server.safe_timeout_s == 1


@pytest.mark.parametrize("fault", ["drop_reply", "garbage", "error_code", "delay", "stall"])
def test_the_keepalive_reports_a_pump_fault_and_the_stop_still_gets_through(safe_pump, hardware, fault):
    server, pump = safe_pump
    seen = faults_seen(pump)
    pump.aspirate(1.2)
    server.inject(fault)
    wait(lambda: bool(seen))  # nothing else talks to the pump: the keepalive notices
    assert seen[0].device == "pump" and seen[0].action == "keepalive"
    try:
        pump.stop()
    except DeviceError as exc:  # unconfirmed under most of these faults, but obeyed
        assert "stop" in str(exc)
    wait(lambda: hardware.pump.rate_nl_s() == 0.0)


def test_a_pulled_pump_cable_leaves_the_pump_to_its_own_watchdog(safe_pump, hardware):
    server, pump = safe_pump
    seen = faults_seen(pump)
    pump.aspirate(1.2)
    server.inject("disconnect")
    wait(lambda: bool(seen))
    assert "serial link lost" in str(seen[0])
    with pytest.raises(DeviceError, match="pump: stop: STP not confirmed"):
        pump.stop()
    wait(lambda: hardware.pump.rate_nl_s() == 0.0)  # safe mode: the pump stopped itself


def test_a_pump_alarm_is_reported(safe_pump, hardware):
    server, pump = safe_pump
    seen = faults_seen(pump)
    pump.aspirate(1.2)
    pump._closing.set()  # the keepalive falls silent: the pump's watchdog fires and announces alarm T
    wait(lambda: any("alarm" in str(e) for e in seen))
    assert "safe-mode communications time out" in str(next(e for e in seen if "alarm" in str(e)))
    assert hardware.pump.rate_nl_s() == 0.0


# ----- PI GCS --------------------------------------------------------------------------------------------
def test_focus_stop_goes_out_past_a_stalled_query(hardware, connect):
    server = GcsServer(hardware.focus)
    focus = connect(server, PiezoFocus, timeout_s=SLOW)
    focus.move_to_um(40.0, 5.0)
    wait(lambda: hardware.focus.is_moving())
    server.inject("stall")
    query = InFlight(focus.z_um)
    wait(lambda: received(server, lambda line: line.startswith("POS?")))
    stopping = InFlight(focus.stop)
    wait(lambda: received(server, lambda line: line == "\x18"))
    assert query.thread.is_alive()  # #24 went out while POS? still waited for its reply
    wait(lambda: not hardware.focus.is_moving())  # the server logs a line before it acts on it
    stopping.thread.join(3 * SLOW)
    assert isinstance(stopping.error, DeviceError)


def test_a_refusing_piezo_controller_is_a_device_error(hardware, connect):
    server = GcsServer(hardware.focus)
    focus = connect(server, PiezoFocus, timeout_s=0.5)
    server.inject("error_code")
    with pytest.raises(DeviceError, match="focus: z_um: controller error"):
        focus.z_um()


# ----- uMp -----------------------------------------------------------------------------------------------
@pytest.fixture
def ump(hardware, context):
    pytest.importorskip("sensapex")
    from drivers.sensapex_ump import SensapexManipulator
    from sim.protocols.smcp import SmcpServer

    server = SmcpServer(hardware.manipulator)
    device = SensapexManipulator("manipulator", SensapexManipulator.Settings(address="127.0.0.1"), context)
    yield device, server
    device.close()
    server.close()


def test_ump_stop_reaches_a_stalled_device_on_its_own_link(ump, hardware):
    from sim.protocols.smcp import STOP

    device, server = ump
    device.move_to_um(device.position_um() + [400, 0, 0], 100)
    wait(lambda: hardware.manipulator.is_moving())
    server.inject("stall")
    with pytest.raises(DeviceError, match="manipulator: stop: STOP sent, not acknowledged"):
        device.stop()
    assert STOP in [kind for _, kind in server.received]
    assert not hardware.manipulator.is_moving()


def test_a_silent_ump_is_noticed_between_moves(ump):
    device, server = ump
    seen = faults_seen(device)
    server.inject("disconnect")
    wait(lambda: bool(seen))
    assert seen[0].action == "keepalive" and "no reply from the uMp" in str(seen[0])


def test_a_ump_refusing_its_drives_fails_the_move(ump, hardware):
    device, server = ump
    server.inject("error_code")
    start = hardware.manipulator.position_um()
    handle = device.move_to_um(device.position_um() + [30, 0, 0], 300)
    with pytest.raises(DeviceError, match="the uMp reported a failed drive"):
        handle.wait(5.0)
    assert np.allclose(hardware.manipulator.position_um(), start, atol=0.1)


# ----- every device at once --------------------------------------------------------------------------------
def test_the_emergency_stop_reaches_every_device_while_each_link_is_stalled(hardware, connect, ump):
    """A query stalled on every serial link: every stop command still reaches its device while those
    queries wait, and every device halts."""
    manipulator, ump_server = ump
    stage_server, pump_server, focus_server = ProScanServer(hardware.stage), NewEraServer(hardware.pump, safe_timeout_s=1), \
        GcsServer(hardware.focus)
    stage = connect(stage_server, ProScanStage, reply_timeout_s=SLOW)
    pump = connect(pump_server, NewEraPump, reply_timeout_s=SLOW, keepalive_s=0.2)
    focus = connect(focus_server, PiezoFocus, timeout_s=SLOW)
    stage.move_to_um(3000.0, 0.0, 1000.0)
    pump.aspirate(1.2)
    focus.move_to_um(60.0, 5.0)
    manipulator.move_to_um(manipulator.position_um() + [400, 0, 0], 100)
    for server in (stage_server, pump_server, focus_server, ump_server):
        server.inject("stall")
    queries = [InFlight(stage.position_um), InFlight(focus.z_um), InFlight(pump.volume_nl)]
    wait(lambda: received(stage_server, lambda line: line == "P") and received(focus_server, lambda line: line.startswith("POS?"))
         and received(pump_server, lambda line: "DIS" in line))
    failed = ESTOP.trigger("test", confirm_s=0.0)
    wait(lambda: received(stage_server, lambda line: line == "K") and received(focus_server, lambda line: line == "\x18")
         and received(pump_server, lambda line: "STP" in line))
    assert all(q.thread.is_alive() for q in queries)  # every stop went past a query still in flight
    from sim.protocols.smcp import STOP

    wait(lambda: STOP in [kind for _, kind in ump_server.received])
    wait(lambda: not any(d.is_moving() for d in (hardware.stage, hardware.focus, hardware.manipulator))
         and hardware.pump.rate_nl_s() == 0.0)
    assert set(failed) == {"stage", "focus", "pump", "manipulator"}  # none could confirm within 0 s


def test_fault_names():
    assert FAULTS == ("drop_reply", "garbage", "error_code", "delay", "disconnect", "stall")
