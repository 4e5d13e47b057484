"""New Era NE-1000-family syringe pump over RS-232 (pyserial), in basic or safe mode.

Rates are given to the pump in uL/h (``RAT 4.32 UH`` is 1.2 nL/s) or mL/h for fast rates, with at most
four significant digits: :func:`format_rate` picks the finest that fits and the driver reports the rate
the pump will really run. Aspirating is ``DIR WDR`` (withdraw into the pipette). Every reply is
checked (``addr status data``); ``?`` codes, alarms, silence, garbage or a lost link stop the pump (best
effort) and raise one :class:`DeviceError`. ``STP`` goes out at once, even while a query waits for its
reply, and :meth:`stop` raises unless the pump confirms it.

Safe mode is the default and the one to use at the microscope: every packet carries a CRC, so line
noise cannot turn into a command, and the pump stops itself if the host goes quiet for
``safe_timeout_s`` (a crashed program or a pulled cable cannot leave it aspirating). The driver sets
that watchdog with ``SAF`` at open. In either mode a keepalive thread asks for the status every
``keepalive_s`` (in safe mode at most a third of the watchdog period, which it feeds): a missing or bad
answer, an alarm or a lost link is emitted on ``faulted`` at once, so the controller hears of a pump
failure while nothing else talks to the pump. The pump must already be in safe mode (``SAF`` is kept
over power cycles); after the driver closes, the idle pump's watchdog alarm beeps once.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError
from drivers.interfaces import Pump
from drivers.framing import BAD_PACKET, LineFraming, SafePacketFraming
from drivers.serial_line import LinkError, SerialLine
from drivers.units import NlPerS, Seconds

log = logging.getLogger(__name__)

STX = "\x02"
ERRORS = {"?": "unknown command", "?OOR": "value out of range", "?NA": "not applicable now",
          "?COM": "invalid packet", "?IGN": "command ignored"}
ALARMS = {"R": "pump was reset (power interrupted)", "S": "motor stalled", "T": "safe-mode communications time out",
          "E": "pumping program error", "O": "pumping program phase out of range"}
#: nL/s in one unit of each rate unit the driver uses
NL_S_PER_UNIT = {"UH": 1000 / 3600, "MH": 1e6 / 3600}


def format_rate(rate_nl_s: float) -> tuple[str, float]:
    """``RAT`` argument for a rate (at most 4 significant digits, 5 characters) and the rate it means."""
    for units in ("UH", "MH"):
        value = rate_nl_s / NL_S_PER_UNIT[units]
        if value >= 9999.5:
            continue
        for decimals in (3, 2, 1, 0):
            text = f"{value:.{decimals}f}"
            if len(text) <= 5 and len(text.replace(".", "").lstrip("0")) <= 4 and float(text) > 0:
                return f"{text} {units}", float(text) * NL_S_PER_UNIT[units]
    raise ValueError(f"rate {rate_nl_s} nL/s cannot be written for the pump")


class NewEraPump(Pump):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: str = Field(description="serial port or pyserial URL")
        baud: int = Field(19200, description="the pump's baud rate (19200 from the factory)")
        address: int = Field(0, ge=0, le=99, description="pump address on the RS-232 chain")
        syringe_diameter_mm: float = Field(4.61, gt=0, description="DIA: inner diameter of the syringe")
        max_rate_nl_s: NlPerS = Field(50.0, gt=0)
        reply_timeout_s: Seconds = Field(0.5, gt=0)
        framing: Literal["basic", "safe"] = Field("safe", description="how the pump is set to talk (SAF): safe"
                                                  " (CRC packets and the pump's own watchdog) or basic")
        safe_timeout_s: int = Field(1, ge=1, le=255, description="safe mode: the pump stops itself after this "
                                                                  "long without a valid packet")
        keepalive_s: Seconds = Field(0.3, gt=0, description="status request period: how soon a failed pump or"
                                     " link is noticed while nothing else talks to it")

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock, settings.max_rate_nl_s)
        self.s = settings
        self._rate = 0.0
        self._safe = settings.framing == "safe"
        framing = SafePacketFraming() if self._safe else LineFraming(b"\r", b"\x03")
        try:
            self._line = SerialLine(settings.port, settings.baud, framing, self._on_unsolicited, self._on_link_lost,
                                    name)
        except LinkError as exc:
            raise DeviceError(name, "open", str(exc)) from None
        self._closing = threading.Event()
        self._keepalive: threading.Thread | None = None
        try:
            if self._safe:
                self._command(f"SAF {settings.safe_timeout_s}", "open")
            self._keepalive = threading.Thread(target=self._keep_alive, name=f"{name}-keepalive", daemon=True)
            self._keepalive.start()
            self._command("STP", "open")
            self._command(f"DIA {settings.syringe_diameter_mm:g}", "open")
            self.firmware = self._command("VER", "open")[1]
        except DeviceError as exc:
            self._closing.set()
            self._line.close()
            if self._safe and "no reply" in str(exc):
                raise DeviceError(name, "open", f"{exc.detail}; is the pump in safe mode? (set SAF on the pump, "
                                                "or framing: basic)") from None
            raise

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> NewEraPump:
        return cls(name, settings, context)

    def _on_unsolicited(self, line: str) -> None:
        if "A?" in line:  # safe mode's auto-alarm: the pump has stopped itself
            self._rate = 0.0
            self.report_fault(DeviceError(self.name, "alarm",
                                          f"pump alarm {self._alarm_text(line[line.index('A?') + 2:])}"))
            return
        log.warning("%s: unexpected reply %r", self.name, line)

    @staticmethod
    def _alarm_text(code: str) -> str:
        return f"{code!r} ({ALARMS.get(code[:1], 'unknown alarm')})"

    def _keep_alive(self) -> None:
        """A status request every ``keepalive_s`` (in safe mode at most a third of the pump's time-out, so
        its watchdog never fires while the host is there); a failure is reported on ``faulted``."""
        period_s = min(self.s.keepalive_s, self.s.safe_timeout_s / 3) if self._safe else self.s.keepalive_s
        reported = False
        while not self._closing.wait(period_s):
            if self._line.lost:
                return
            try:
                self._command("", "keepalive", stop_on_fault=False)
                reported = False
            except DeviceError as exc:
                if not reported and not self._closing.is_set():  # once, until the pump answers again
                    reported = True
                    self.report_fault(exc)

    def _on_link_lost(self, why: str) -> None:
        self._rate = 0.0
        self.report_fault(DeviceError(self.name, "link", why))

    def _command(self, command: str, action: str, stop_on_fault: bool = True) -> tuple[str, str]:
        """Send one command; returns (status, data). Faults stop the pump and raise DeviceError."""
        try:
            raw = self._line.query(f"{self.s.address:02d}{command}", self.s.reply_timeout_s)
        except LinkError as exc:
            raise self._fail(action, str(exc), stop_on_fault) from None
        return self._parse(raw, command, action, stop_on_fault)

    def _parse(self, raw: str, command: str, action: str, stop_on_fault: bool) -> tuple[str, str]:
        """(status, data) of one reply; a garbled reply, an alarm or a refusal raises DeviceError."""
        if raw == BAD_PACKET:
            raise self._fail(action, f"garbled reply to {command!r} (packet failed its CRC or framing)", stop_on_fault)
        body = raw if self._safe else raw[raw.rfind(STX) + 1 :] if STX in raw else ""
        m = re.fullmatch(r"(\d\d)([SIWPTUX]|A\?)(.*)", body)
        if m is None or int(m.group(1)) != self.s.address:
            raise self._fail(action, f"garbled reply {raw!r} to {command!r}", stop_on_fault)
        status, data = m.group(2), m.group(3)
        if status == "A?":
            self._rate = 0.0  # an alarm has stopped the pump (also when the keepalive is the one to hear it)
            raise self._fail(action, f"pump alarm {self._alarm_text(data)} after {command!r}", stop_on_fault)
        if data.startswith("?"):
            raise self._fail(action, f"pump refused {command!r}: {data} ({ERRORS.get(data, 'unknown code')})",
                             stop_on_fault)
        return status, data

    def _fail(self, action: str, detail: str, stop: bool) -> DeviceError:
        if stop:
            self.stop_quietly()
        return DeviceError(self.name, action, detail)

    # ----- Pump ------------------------------------------------------------------------------------------
    def _start_flow(self, signed_rate_nl_s: float) -> None:
        action = "aspirate" if signed_rate_nl_s > 0 else "dispense"
        try:
            rat, actual = format_rate(abs(signed_rate_nl_s))
        except ValueError as exc:
            raise DeviceError(self.name, action, str(exc)) from None
        self._command("STP", action)
        self._command("DIR WDR" if signed_rate_nl_s > 0 else "DIR INF", action)
        self._command(f"RAT {rat}", action)
        self._command("RUN", action)
        self._rate = actual if signed_rate_nl_s > 0 else -actual

    def stop(self) -> None:
        """``STP``, sent at once even while a query waits for its reply. Safe from any thread; raises
        DeviceError when the link is gone or the pump does not confirm (it may still be pumping)."""
        self._rate = 0.0
        command = f"{self.s.address:02d}STP"
        try:
            expectation = self._line.urgent(command, accept=lambda reply: True)
            raw = self._line.wait_for(expectation, self.s.reply_timeout_s)
        except LinkError as exc:
            raise DeviceError(self.name, "stop", f"STP not confirmed: {exc}") from None
        try:
            status, _ = self._parse(raw, "STP", "stop", stop_on_fault=False)
        except DeviceError as exc:
            if "pump alarm" not in exc.detail:
                raise
            self.report_fault(exc)  # an alarm has stopped the pump: stopped, but a fault all the same
            return
        if status not in ("S", "P"):  # stopped, or paused (a pumping program's phase held)
            raise DeviceError(self.name, "stop", f"the pump still reports status {status!r} after STP")

    def rate_nl_s(self) -> float:
        return self._rate

    def volume_nl(self) -> float:
        _, data = self._command("DIS", "volume_nl")
        m = re.fullmatch(r"I([0-9.]+)W([0-9.]+)(UL|ML)", data)
        if m is None:
            raise self._fail("volume_nl", f"garbled volume {data!r} (expected I<inf>W<wdr>UL|ML)", True)
        scale = 1000.0 if m.group(3) == "UL" else 1e6
        return (float(m.group(2)) - float(m.group(1))) * scale

    def close(self) -> None:
        self._closing.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=2.0)
        try:
            self.stop_quietly()
        finally:
            self._line.close()
            self.forget_estop()
