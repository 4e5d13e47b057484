"""Prior ProScan driver against the ProScan protocol server on a pseudo-terminal."""

from __future__ import annotations

import pytest

from drivers.errors import DeviceError, LimitError
from drivers.prior import ProScanStage
from sim.protocols.proscan import ProScanServer


@pytest.fixture
def link(twin, connect):
    server = ProScanServer(twin.stage)
    return server, connect(server, ProScanStage, reply_timeout_s=0.3)


def test_open_puts_controller_in_standard_mode_with_resolution(link):
    server, stage = link
    assert server.compatibility == 0
    assert server.resolution_um == pytest.approx(0.1)
    assert stage.firmware == "100"


def test_move_returns_at_once_and_ends_on_R(link, twin):
    server, stage = link
    handle = stage.move_to_um(300.0, -200.0, speed_um_s=2000)
    assert not handle.done  # G does not block the caller
    assert server.speed_percent == 20
    handle.wait(5)
    x, y = stage.position_um()
    assert (x, y) == pytest.approx((300.0, -200.0), abs=0.2)
    assert twin.stage.true_position_um() == pytest.approx((300.0, -200.0), abs=0.05)


def test_position_queries_during_a_move_are_not_confused_with_R(link):
    _, stage = link
    handle = stage.move_to_um(2000.0, 0.0, speed_um_s=2000)
    xs = []
    while not handle.done:
        xs.append(stage.position_um()[0])
    steps = [b - a for a, b in zip(xs, xs[1:])]
    assert len(xs) > 5 and min(steps) > -0.3  # progress (within encoder noise), every reply parsed
    assert xs[-1] > 1000
    handle.wait(1)


def test_stop_halts_midway(link, twin):
    _, stage = link
    handle = stage.move_to_um(3000.0, 0.0, speed_um_s=3000)
    twin.clock.sleep(0.2)
    stage.stop()
    assert not stage.is_moving()
    with pytest.raises(DeviceError, match="stopped before reaching"):
        handle.wait(1)
    assert 0 < twin.stage.true_position_um()[0] < 2900


def test_limits_checked_before_anything_is_sent(link):
    server, stage = link
    sent = server.link.lines_received
    with pytest.raises(LimitError, match="outside limits"):
        stage.move_to_um(1e6, 0)
    assert server.link.lines_received == sent


def test_lost_reply_is_a_clear_error_and_stops(link, twin):
    server, stage = link
    server.link.faults.drop_replies = 1
    with pytest.raises(DeviceError, match=r"stage: position_um: no reply to 'P' within 0.3 s"):
        stage.position_um()
    assert not twin.stage.is_moving()


def test_garbage_reply_is_a_clear_error(link):
    server, stage = link
    server.link.faults.garbage_replies = 1
    with pytest.raises(DeviceError, match="stage: position_um: garbled reply"):
        stage.position_um()
    assert stage.position_um() == pytest.approx((0.0, 0.0), abs=0.2)  # the link recovers


def test_controller_error_code_is_named(link):
    server, stage = link
    with pytest.raises(DeviceError, match=r"E,5 .*unknown command"):
        stage._ask("NOSUCH", "probe")


def test_disconnect_mid_move_fails_the_move_and_later_calls(link, twin):
    server, stage = link
    handle = stage.move_to_um(3000.0, 0.0, speed_um_s=3000)
    server.link.disconnect()
    with pytest.raises(DeviceError, match="serial link lost"):
        handle.wait(2)
    with pytest.raises(DeviceError, match="serial link lost"):
        stage.position_um()


def test_slow_link_still_works_within_timeout(link):
    server, stage = link
    server.link.faults.delay_s = 0.05
    assert stage.position_um() == pytest.approx((0.0, 0.0), abs=0.2)


def test_bad_port_is_a_clear_error(context):
    with pytest.raises(DeviceError, match="stage: open: cannot open serial port '/dev/nonexistent'"):
        ProScanStage("stage", ProScanStage.Settings(port="/dev/nonexistent"), context)
