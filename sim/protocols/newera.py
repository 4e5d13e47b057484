"""New Era NE-1000 syringe pump, as its RS-232 port behaves in basic and safe mode, driving a twin pump.

Basic mode: commands end with CR; every reply is ``STX, address (2 digits), status, [data], ETX`` where
status is ``S`` stopped, ``I`` infusing, ``W`` withdrawing, or an alarm ``A?`` + type. Errors put ``?``
codes in the data: ``?`` unknown command, ``?OOR`` out of range, ``?NA`` not applicable now, ``?COM``
invalid packet. Rates carry units: UM/MM (uL/mL per minute), UH/MH (per hour). Withdrawing aspirates.

Safe mode (``SAF n``, n > 0; kept over power cycles): commands and replies travel as CRC-checked packets
(:class:`drivers.framing.SafePacketFraming`), and n is a communications watchdog: once a valid packet has
arrived, n seconds without another stop the pump with alarm ``T``, announced at once (auto-alarm).
"""

from __future__ import annotations

import re
import threading
import time

from drivers.framing import BAD_PACKET, LineFraming, SafePacketFraming
from drivers.interfaces import Pump
from sim.protocols.line_server import LineServer

STX, ETX = "\x02", "\x03"
#: nL/s per unit of each rate unit
RATE_UNITS = {"UM": 1000 / 60, "MM": 1e6 / 60, "UH": 1000 / 3600, "MH": 1e6 / 3600}


class NewEraServer:
    """Speaks NE-1000 on a pseudo-terminal (:attr:`port`) and drives ``pump``; ``safe_timeout_s`` > 0
    powers it up in safe mode with that watchdog."""

    def __init__(self, pump: Pump, address: int = 0, safe_timeout_s: int = 0) -> None:
        self.pump = pump
        self.address = address
        self.diameter_mm = 4.61
        self.rate_value, self.rate_units = 1.0, "UH"
        self.direction = "INF"
        self.infused_nl = 0.0
        self.withdrawn_nl = 0.0
        self._run_start_nl: float | None = None
        self._lock = threading.Lock()
        self.safe_timeout_s = safe_timeout_s
        self.alarm: str | None = None
        self._last_packet_s: float | None = None  # the watchdog runs from the first valid packet
        self.link = LineServer(self.handle, "newera", self._framing(), is_stop=self._is_stop, refusal=self._refuse)
        self.port = self.link.port
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="newera-watchdog", daemon=True)
        self._watchdog.start()

    @property
    def received(self):
        """(monotonic s, message) of every message received lately."""
        return self.link.received

    def inject(self, fault: str) -> None:
        """A fault of :mod:`sim.protocols.faults` from now on (``error_code``: ``?NA`` to every command
        but ``STP``; ``stall``: the pump hangs, its watchdog unfed)."""
        self.link.inject(fault)

    @staticmethod
    def _is_stop(line: str) -> bool:
        return re.fullmatch(r"\s*\d*\s*STP\s*", line, re.IGNORECASE) is not None

    def _refuse(self, line: str) -> list[str]:
        """A valid packet the pump will not obey: it still feeds the watchdog."""
        with self._lock:
            if line != BAD_PACKET and self.safe_timeout_s > 0:
                self._last_packet_s = time.monotonic()
            return self._reply("?NA")

    def _framing(self) -> LineFraming | SafePacketFraming:
        return SafePacketFraming() if self.safe_timeout_s > 0 else LineFraming(b"", b"\r")

    def _watch(self) -> None:
        while not self._closed.wait(0.01):
            with self._lock:
                last = self._last_packet_s
                if self.safe_timeout_s <= 0 or last is None or time.monotonic() - last < self.safe_timeout_s:
                    continue
                self._last_packet_s = None  # the timer restarts with the next valid packet
                self._settle_run()
                self._run_start_nl = None
                self.pump.stop()
                self.alarm = "T"
                replies = self._reply()
            for reply in replies:
                self.link.send(reply)

    def _status(self) -> str:
        if self._run_start_nl is None:
            return "S"
        return "I" if self.direction == "INF" else "W"

    def _reply(self, data: str = "") -> list[str]:
        status = self._status()
        if self.alarm is not None:
            status, self.alarm = f"A?{self.alarm}", None  # an alarm is reported once
        body = f"{self.address:02d}{status}{data}"
        return [body] if self.safe_timeout_s > 0 else [f"{STX}{body}{ETX}"]

    def _settle_run(self) -> None:
        """Book the volume moved since RUN to the direction it ran in."""
        if self._run_start_nl is None:
            return
        moved = self.pump.volume_nl() - self._run_start_nl  # + aspirated (withdrawn), - infused
        if self.direction == "WDR":
            self.withdrawn_nl += max(moved, 0.0)
        else:
            self.infused_nl += max(-moved, 0.0)
        self._run_start_nl = self.pump.volume_nl()

    def handle(self, line: str) -> list[str]:
        if line == BAD_PACKET:
            with self._lock:
                return self._reply("?COM")
        if self.safe_timeout_s > 0:
            self._last_packet_s = time.monotonic()
        m = re.fullmatch(r"\s*(\d*)\s*([A-Za-z]*)\s*(.*?)\s*", line)
        if not m:
            return self._reply("?")
        address, cmd, arg = m.group(1), m.group(2).upper(), m.group(3).upper()
        if address and int(address) != self.address:
            return []  # another pump on the chain
        with self._lock:
            if not cmd:
                return self._reply()  # an empty command asks for the status
            if cmd == "SAF":
                if not arg:
                    return self._reply(str(self.safe_timeout_s))
                if not arg.isdigit() or int(arg) > 255:
                    return self._reply("?OOR")
                for reply in self._reply():  # answered in the framing it was asked in
                    self.link.send(reply)
                self.safe_timeout_s = int(arg)
                self.link.framing = self._framing()
                return []
            if cmd == "VER":
                return self._reply("NE1000V3.928")
            if cmd == "DIA":
                if not arg:
                    return self._reply(f"{self.diameter_mm:g}")
                try:
                    value = float(arg)
                except ValueError:
                    return self._reply("?")
                if not 0.1 <= value <= 50.0:
                    return self._reply("?OOR")
                self.diameter_mm = value
                return self._reply()
            if cmd == "RAT":
                if not arg:
                    return self._reply(f"{self.rate_value:g}{self.rate_units}")
                rm = re.fullmatch(r"([0-9.]+)\s*(UM|MM|UH|MH)?", arg)
                if not rm:
                    return self._reply("?")
                value, units = float(rm.group(1)), rm.group(2) or self.rate_units
                digits = rm.group(1).replace(".", "").lstrip("0")
                if len(rm.group(1)) > 5 or len(digits) > 4 or value <= 0:
                    return self._reply("?OOR")
                if value * RATE_UNITS[units] > self.pump.max_rate_nl_s:
                    return self._reply("?OOR")
                self.rate_value, self.rate_units = value, units
                if self._run_start_nl is not None:
                    self._start()
                return self._reply()
            if cmd == "DIR":
                if not arg:
                    return self._reply(self.direction)
                if arg not in ("INF", "WDR", "REV"):
                    return self._reply("?")
                if arg == "REV":
                    arg = "WDR" if self.direction == "INF" else "INF"
                self._settle_run()
                self.direction = arg
                if self._run_start_nl is not None:
                    self._start()
                return self._reply()
            if cmd == "RUN":
                self._run_start_nl = self.pump.volume_nl()
                self._start()
                return self._reply()
            if cmd == "STP":
                self._settle_run()
                self._run_start_nl = None
                self.pump.stop()
                return self._reply()
            if cmd == "DIS":
                self._settle_run()
                return self._reply(f"I{self.infused_nl / 1000:.4f}W{self.withdrawn_nl / 1000:.4f}UL")
            return self._reply("?")

    def _start(self) -> None:
        rate = self.rate_value * RATE_UNITS[self.rate_units]
        if self.direction == "WDR":
            self.pump.aspirate(rate)
        else:
            self.pump.dispense(rate)

    def close(self) -> None:
        self._closed.set()
        self._watchdog.join(timeout=1.0)
        self.link.close()
