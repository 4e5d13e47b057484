"""A PI piezo controller (E-709-like, one axis ``1``) speaking GCS 2.0 over RS-232, driving a twin focus.

Commands end with LF; answers end with LF, multi-line answers put a space before every LF but the last.
Set commands answer nothing: their errors are kept for ``ERR?`` (GCS error codes: 1 parameter syntax,
2 unknown command, 7 position out of limits, 10 controller stopped by command, 15 invalid axis).
Single-byte commands need no LF: ``#5`` motion status (hex bit mask), ``#7`` ready (byte 177), ``#24``
stop all. Positions are in um of the piezo's own range; the twin's focus position is the same number.
"""

from __future__ import annotations

import re
import threading

from drivers.errors import MicromanipError
from drivers.interfaces import FocusDrive
from drivers.framing import LineFraming
from sim.protocols.line_server import LineServer

AXIS = "1"
#: the error a refusing controller reports (fault ``error_code``): "motion error, servo switched off"
MOTION_ERROR = 1024


class GcsServer:
    """GCS 2 on a pseudo-terminal (:attr:`port`), moving ``focus`` (a twin device)."""

    def __init__(self, focus: FocusDrive, range_um: tuple[float, float] = (0.0, 100.0)) -> None:
        self.focus = focus
        self.range_um = range_um
        self.servo = False
        self.velocity_um_s = focus.max_speed_um_s
        self.error = 0
        self._lock = threading.Lock()
        self._handle = None
        self.link = LineServer(self.handle, "pi-gcs", LineFraming(b"\n"), immediate=b"\x05\x07\x18",
                               is_stop=self._is_stop, refusal=self._refuse)
        self.port = self.link.port

    @property
    def received(self):
        """(monotonic s, message) of every message received lately."""
        return self.link.received

    def inject(self, fault: str) -> None:
        """A fault of :mod:`sim.protocols.faults` from now on (``error_code``: every command sets error
        1024 and is not obeyed; queries are answered, so ``ERR?`` reports it)."""
        self.link.inject(fault)

    @staticmethod
    def _is_stop(line: str) -> bool:
        return line == "\x18" or line.split()[:1] in (["HLT"], ["STP"])

    def _refuse(self, line: str) -> list[str]:
        with self._lock:
            self.error = MOTION_ERROR
            if line in ("\x05", "\x07") or line.split()[0].endswith("?"):
                return self._handle_locked(line) if line.split()[0].upper() != "ERR?" else [str(MOTION_ERROR)]
            return []

    def _axis_ok(self, axis: str) -> bool:
        if axis != AXIS:
            self.error = 15
            return False
        return True

    def handle(self, line: str) -> list[str]:
        with self._lock:
            return self._handle_locked(line)

    def _handle_locked(self, line: str) -> list[str]:
        if line == "\x05":
            return ["1" if self.focus.is_moving() else "0"]
        if line == "\x07":
            return ["\xb1"]
        if line == "\x18":
            self.focus.stop()
            self.error = 10
            return []
        parts = line.split()
        cmd, args = parts[0].upper(), parts[1:]
        if cmd == "*IDN?":
            return ["(c)2026 Physik Instrumente (PI) GmbH & Co. KG, E-709 twin, 0, 01.000"]
        if cmd == "ERR?":
            code, self.error = self.error, 0
            return [str(code)]
        if cmd == "CSV?":
            return ["2.0"]
        if cmd == "SAI?":
            return [AXIS]
        if cmd in ("POS?", "ONT?", "SVO?", "TMN?", "TMX?", "VEL?", "MOV?"):
            axes = args or [AXIS]
            if not all(self._axis_ok(a) for a in axes):
                return []
            value = {
                "POS?": lambda: f"{self.focus.z_um():.6f}",
                "ONT?": lambda: "0" if self.focus.is_moving() else "1",
                "SVO?": lambda: "1" if self.servo else "0",
                "TMN?": lambda: f"{self.range_um[0]:.6f}",
                "TMX?": lambda: f"{self.range_um[1]:.6f}",
                "VEL?": lambda: f"{self.velocity_um_s:.6f}",
                "MOV?": lambda: f"{self.focus.z_um():.6f}",
            }[cmd]()
            return [f"{AXIS}={value}"]
        if cmd in ("SVO", "MOV", "VEL"):
            pairs = dict(zip(args[0::2], args[1::2]))
            if len(args) % 2 or not pairs:
                self.error = 1
                return []
            for axis, raw in pairs.items():
                if not self._axis_ok(axis):
                    return []
                if not re.fullmatch(r"[-+]?[0-9]*\.?[0-9]+(e[-+]?\d+)?", raw, re.IGNORECASE):
                    self.error = 1
                    return []
                value = float(raw)
                if cmd == "SVO":
                    self.servo = value != 0
                elif cmd == "VEL":
                    self.velocity_um_s = min(value, self.focus.max_speed_um_s)
                else:
                    if not self.servo:
                        self.error = 5  # servo off: closed-loop move refused
                        return []
                    if not self.range_um[0] <= value <= self.range_um[1]:
                        self.error = 7
                        return []
                    try:
                        self.focus.move_to_um(value, self.velocity_um_s)
                    except MicromanipError:
                        self.error = 7
            return []
        if cmd in ("HLT", "STP"):
            self.focus.stop()
            self.error = 10
            return []
        self.error = 2
        return []

    def close(self) -> None:
        self.link.close()
