"""New Era NE-1000 driver against the NE-1000 protocol server on a pseudo-terminal."""

from __future__ import annotations

import pytest

from drivers.errors import DeviceError, LimitError
from drivers.newera import NewEraPump, format_rate
from sim.protocols.newera import NewEraServer


@pytest.fixture
def link(twin, connect):
    server = NewEraServer(twin.pump)
    return server, connect(server, NewEraPump, reply_timeout_s=0.3)


@pytest.mark.parametrize("rate_nl_s, text", [(1.2, "4.320 UH"), (0.05, "0.180 UH"), (10.0, "36.00 UH"),
                                            (50.0, "180.0 UH"), (3000.0, "10.80 MH")])
def test_rate_formatting(rate_nl_s, text):
    rat, actual = format_rate(rate_nl_s)
    assert rat == text
    assert actual == pytest.approx(rate_nl_s, rel=1e-3)


def test_aspirate_at_paper_rate_withdraws_into_the_pipette(link, twin):
    server, pump = link
    pump.aspirate(1.2)
    assert (server.direction, server.rate_value, server.rate_units) == ("WDR", 4.32, "UH")
    assert twin.pump.rate_nl_s() == pytest.approx(1.2)
    twin.clock.sleep(0.5)
    pump.stop()
    assert twin.pump.rate_nl_s() == 0.0
    volume = pump.volume_nl()
    assert volume == pytest.approx(twin.pump.volume_nl(), abs=0.1)
    assert 0.3 < volume < 0.7  # 1.2 nL/s for ~0.5 s, minus the start lag


def test_dispense_counts_negative(link):
    _, pump = link
    pump.dispense(20.0)
    pump.clock.sleep(0.3)
    pump.stop()
    assert pump.volume_nl() < -3.0


def test_rate_above_limit_is_refused_before_sending(link):
    server, pump = link
    sent = server.link.lines_received
    with pytest.raises(LimitError, match="exceeds the limit 50 nL/s"):
        pump.aspirate(80.0)
    assert server.link.lines_received == sent


def test_pump_refusal_is_named_and_pump_stopped(twin, connect):
    pump = connect(NewEraServer(twin.pump), NewEraPump, max_rate_nl_s=100.0)
    with pytest.raises(DeviceError, match=r"pump: aspirate: pump refused 'RAT 216.0 UH': \?OOR"):
        pump.aspirate(60.0)  # the driver allows it; the twin pump's own limit is 50 nL/s
    assert twin.pump.rate_nl_s() == 0.0


def test_silence_garbage_and_disconnect_are_clear_errors(link, twin):
    server, pump = link
    pump.aspirate(5.0)
    server.link.faults.drop_replies = 1
    with pytest.raises(DeviceError, match=r"pump: volume_nl: no reply to '00DIS' within 0.3 s"):
        pump.volume_nl()
    assert twin.pump.rate_nl_s() == 0.0  # stopped after the fault
    server.link.faults.garbage_replies = 1
    with pytest.raises(DeviceError, match="pump: volume_nl: garbled reply"):
        pump.volume_nl()
    pump.aspirate(5.0)
    server.link.disconnect()
    with pytest.raises(DeviceError, match="serial link lost"):
        pump.volume_nl()
    assert pump.rate_nl_s() == 0.0
