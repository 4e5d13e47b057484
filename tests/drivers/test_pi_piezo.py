"""PI piezo focus through the real pipython library, against a GCS 2 server on a pseudo-terminal."""

from __future__ import annotations

import pytest

from drivers.errors import DeviceError, LimitError
from drivers.pi_piezo import PiezoFocus
from sim.protocols.pi_gcs import GcsServer


@pytest.fixture
def link(twin, connect):
    server = GcsServer(twin.focus)
    return server, connect(server, PiezoFocus, timeout_s=0.3)


def test_open_switches_servo_on_and_reads_identity(link):
    server, focus = link
    assert server.servo
    assert "E-709" in focus.identity


def test_move_and_read_back(link, twin):
    _, focus = link
    handle = focus.move_to_um(12.5, speed_um_s=200)
    handle.wait(3)
    assert focus.z_um() == pytest.approx(12.5, abs=0.05)
    assert twin.focus.z_um() == pytest.approx(12.5, abs=0.05)


def test_limits_checked_before_sending(link):
    server, focus = link
    sent = server.link.lines_received
    with pytest.raises(LimitError, match="outside limits"):
        focus.move_to_um(150.0)
    assert server.link.lines_received == sent


def test_limits_wider_than_the_controller_are_refused(twin, context):
    server = GcsServer(twin.focus, range_um=(0.0, 50.0))
    try:
        with pytest.raises(DeviceError, match=r"focus: open: limits_um \[0.0, 100.0\] exceed .* \[0, 50\] um"):
            PiezoFocus("focus", PiezoFocus.Settings(port=server.port, timeout_s=0.3), context)
    finally:
        server.close()


def test_controller_error_is_named_and_axis_stopped(link, twin):
    server, focus = link
    server.range_um = (0.0, 10.0)  # the controller refuses what our limits allow
    with pytest.raises(DeviceError, match=r"focus: move_to_um: controller error: .*(7|limits)"):
        focus.move_to_um(40.0)
    assert twin.clock.wait_until(lambda: not twin.focus.is_moving(), 0.5)


def test_silence_and_disconnect_are_clear_errors(link):
    server, focus = link
    server.link.faults.drop_replies = 1
    with pytest.raises(DeviceError, match="focus: z_um: controller error"):
        focus.z_um()
    server.link.disconnect()
    with pytest.raises(DeviceError, match="focus: z_um"):
        focus.z_um()
