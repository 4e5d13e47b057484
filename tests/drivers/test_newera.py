"""New Era NE-1000 driver against the NE-1000 protocol server on a pseudo-terminal."""

from __future__ import annotations

import pytest
import serial

from drivers.errors import DeviceError, LimitError
from drivers.framing import SafePacketFraming
from drivers.newera import NewEraPump, format_rate
from sim.protocols.newera import NewEraServer


@pytest.fixture
def link(twin, connect):
    """A pump left in basic mode (plain text lines, no watchdog); no keepalive, so every reply answers the
    test's own commands (the keepalive is tested in test_faults.py)."""
    server = NewEraServer(twin.pump)
    return server, connect(server, NewEraPump, framing="basic", reply_timeout_s=0.3, keepalive_s=600)


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
    assert volume > 0.3  # 1.2 nL/s for ~0.5 s, minus the start lag (the machine's load may add to it)


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
    pump = connect(NewEraServer(twin.pump), NewEraPump, framing="basic", max_rate_nl_s=100.0)
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


# ----- safe mode: CRC packets and the pump's communications watchdog --------------------------------------
@pytest.fixture
def safe_link(twin, connect):
    server = NewEraServer(twin.pump, safe_timeout_s=5)
    return server, connect(server, NewEraPump, framing="safe", safe_timeout_s=1, reply_timeout_s=0.3)


def test_crc_matches_the_manuals_example():
    assert SafePacketFraming().encode("SAF0") == b"\x02\x08SAF0\x55\x43\x03"


def test_safe_mode_aspirates_and_sets_the_watchdog(safe_link, twin):
    server, pump = safe_link
    assert server.safe_timeout_s == 1  # SAF 1 sent at open
    pump.aspirate(1.2)
    assert (server.direction, server.rate_value, server.rate_units) == ("WDR", 4.32, "UH")
    twin.clock.sleep(1.8)  # longer than the watchdog: the driver's status requests keep it fed
    assert twin.pump.rate_nl_s() == pytest.approx(1.2)
    pump.stop()
    assert 1.5 < pump.volume_nl() < 2.4


def test_a_corrupted_packet_is_caught_by_its_crc_and_stops_the_pump(safe_link, twin):
    server, pump = safe_link
    pump.aspirate(5.0)
    server.link.faults.flip_bits = 1000  # the keepalive's replies too: whichever comes first, DIS meets one
    with pytest.raises(DeviceError, match=r"pump: volume_nl: garbled reply to 'DIS' \(packet failed its CRC"):
        pump.volume_nl()
    server.link.faults.flip_bits = 0
    assert twin.pump.rate_nl_s() == 0.0


def test_a_pump_left_in_basic_mode_is_named_at_open(twin, context):
    server = NewEraServer(twin.pump)
    try:
        with pytest.raises(DeviceError, match=r"is the pump in safe mode\?"):
            NewEraPump("pump", NewEraPump.Settings(port=server.port, framing="safe", reply_timeout_s=0.2), context)
    finally:
        server.close()


def test_the_pump_stops_itself_when_the_host_goes_quiet(twin):
    """A crashed host: commands in safe packets, then silence. After the time-out the pump stops and
    announces alarm T without being asked."""
    server = NewEraServer(twin.pump, safe_timeout_s=1)
    framing = SafePacketFraming()
    host = serial.Serial(server.port, 19200, timeout=0)
    try:
        for command in ("00DIR WDR", "00RAT 36 UH", "00RUN"):
            host.write(framing.encode(command))
            twin.clock.sleep(0.05)
        assert twin.pump.rate_nl_s() == pytest.approx(10.0)
        host.read(host.in_waiting)
        twin.clock.sleep(1.3)
        assert twin.pump.rate_nl_s() == 0.0
        messages, _ = framing.split(host.read(host.in_waiting))
        assert messages == ["00A?T"]
    finally:
        host.close()
        server.close()
