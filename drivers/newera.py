"""New Era NE-1000-family syringe pump over RS-232, basic mode (pyserial).

Rates are given to the pump in uL/h (``RAT 4.32 UH`` is 1.2 nL/s) or mL/h for fast rates, with at most
four significant digits: :func:`format_rate` picks the finest that fits and the driver reports the rate
the pump will really run. Aspirating is ``DIR WDR`` (withdraw into the pipette). Every reply is
checked (``STX addr status data ETX``); ``?`` codes, silence, garbage or a lost link stop the pump (best
effort) and raise one :class:`DeviceError`.
"""

from __future__ import annotations

import logging
import re

from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError
from drivers.interfaces import Pump
from drivers.serial_line import LinkError, SerialLine
from drivers.units import NlPerS, Seconds

log = logging.getLogger(__name__)

STX = "\x02"
ERRORS = {"?": "unknown command", "?OOR": "value out of range", "?NA": "not applicable now",
          "?COM": "invalid packet", "?IGN": "command ignored"}
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
        reply_timeout_s: Seconds = Field(1.0, gt=0)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock, settings.max_rate_nl_s)
        self.s = settings
        self._rate = 0.0
        try:
            self._line = SerialLine(settings.port, settings.baud, b"\r", self._on_unsolicited, self._on_link_lost,
                                    name, reply_terminator=b"\x03")
        except LinkError as exc:
            raise DeviceError(name, "open", str(exc)) from None
        try:
            self._command("STP", "open")
            self._command(f"DIA {settings.syringe_diameter_mm:g}", "open")
            self.firmware = self._command("VER", "open")[1]
        except DeviceError:
            self._line.close()
            raise

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> NewEraPump:
        return cls(name, settings, context)

    def _on_unsolicited(self, line: str) -> None:
        log.warning("%s: unexpected reply %r", self.name, line)

    def _on_link_lost(self, why: str) -> None:
        self._rate = 0.0
        log.error("%s: %s", self.name, why)

    def _command(self, command: str, action: str, stop_on_fault: bool = True) -> tuple[str, str]:
        """Send one command; returns (status, data). Faults stop the pump and raise DeviceError."""
        try:
            raw = self._line.query(f"{self.s.address:02d}{command}", self.s.reply_timeout_s)
        except LinkError as exc:
            raise self._fail(action, str(exc), stop_on_fault) from None
        m = re.fullmatch(r"(\d\d)([SIWPTUX]|A\?)(.*)", raw[raw.rfind(STX) + 1 :]) if STX in raw else None
        if m is None or int(m.group(1)) != self.s.address:
            raise self._fail(action, f"garbled reply {raw!r} to {command!r}", stop_on_fault)
        status, data = m.group(2), m.group(3)
        if status == "A?":
            raise self._fail(action, f"pump alarm {data!r} after {command!r}", stop_on_fault)
        if data.startswith("?"):
            raise self._fail(action, f"pump refused {command!r}: {data} ({ERRORS.get(data, 'unknown code')})",
                             stop_on_fault)
        return status, data

    def _fail(self, action: str, detail: str, stop: bool) -> DeviceError:
        if stop:
            self.stop()
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
        """``STP``. Safe from any thread; a dead link is logged, not raised."""
        self._rate = 0.0
        if self._line.lost:
            log.error("%s: cannot stop, %s", self.name, self._line.lost)
            return
        try:
            self._command("STP", "stop", stop_on_fault=False)
        except DeviceError as exc:
            log.error("%s", exc)

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
        try:
            self.stop()
        finally:
            self._line.close()
