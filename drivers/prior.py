"""Prior ProScan III motorised XY stage over RS-232 (pyserial).

The controller is put in standard mode (``COMP 0``) with a known resolution (``RES,s``), so positions
convert between um and controller units in one place (:meth:`_to_units`, :meth:`_to_um`). Moves are
``G,x,y`` and return at once; the controller's ``R`` at the end of the move, read by the link's reader
thread, marks the move done, and an ``E,n`` instead is the move's fault (each move keeps its own state,
so a move superseded by the next one is not mistaken for it). Speed is ``SMS`` (percent of the
controller's full speed). Every fault -- no reply, a garbage reply, an ``E,n`` error, a lost link --
stops the stage (``K``, best effort) and raises one :class:`DeviceError` naming the stage and the action;
a lost link or an error to a move is also emitted on ``faulted``. ``K`` goes out at once, even while a
query waits for its reply, and :meth:`stop` raises unless the controller confirms it.
"""

from __future__ import annotations

import logging
import math
import threading

from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError
from drivers.interfaces import AxisLimits, MoveHandle, XYStage
from drivers.framing import LineFraming
from drivers.serial_line import LinkError, SerialLine
from drivers.units import Seconds, Um, UmPerS, UmRange

log = logging.getLogger(__name__)

ERRORS = {"1": "no stage connected", "2": "stage not idle", "3": "no drive", "4": "command parse error",
          "5": "unknown command", "8": "value out of range"}


class _Move:
    """One ``G``'s fate: running until ``R`` (done), an ``E,n`` or a lost link (fault), or a stop or a newer
    move (interrupted)."""

    def __init__(self) -> None:
        self.done = False
        self.fault: str | None = None
        self.interrupted: str | None = None

    @property
    def running(self) -> bool:
        return not self.done and self.fault is None and self.interrupted is None


class ProScanStage(XYStage):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: str = Field(description="serial port (/dev/ttyUSB0, COM3) or a pyserial URL (socket://host:port)")
        baud: int = Field(9600, description="the controller's BAUD setting (9600 after power-up)")
        resolution_um: Um = Field(0.1, gt=0, description="RES,s: um per controller unit")
        x_limits_um: UmRange = (-50000.0, 50000.0)
        y_limits_um: UmRange = (-35000.0, 35000.0)
        max_speed_um_s: UmPerS = Field(5000.0, gt=0)
        full_speed_um_s: UmPerS = Field(10000.0, gt=0, description="stage speed at SMS 100%")
        accel_percent: int = Field(100, ge=1, le=100, description="SAS")
        reply_timeout_s: Seconds = Field(1.0, gt=0)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock, AxisLimits(*settings.x_limits_um), AxisLimits(*settings.y_limits_um),
                         settings.max_speed_um_s)
        self.s = settings
        self._move = _Move()
        self._move.done = True
        self._state_lock = threading.Lock()
        self._speed_percent: int | None = None
        try:
            self._line = SerialLine(settings.port, settings.baud, LineFraming(b"\r"), self._on_unsolicited,
                                    self._on_link_lost, name)
        except LinkError as exc:
            raise DeviceError(name, "open", str(exc)) from None
        try:
            self._expect_ok("COMP 0", "open")
            self._expect_ok(f"RES,s,{settings.resolution_um:g}", "open")
            self._expect_ok(f"SAS,{settings.accel_percent}", "open")
            self.firmware = self._ask("VERSION", "open")
        except DeviceError:
            self._line.close()
            raise

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> ProScanStage:
        return cls(name, settings, context)

    # ----- units (the only place they convert) -----------------------------------------------------------
    def _to_units(self, um: float) -> int:
        return int(round(um / self.s.resolution_um))

    def _to_um(self, units: str) -> float:
        return float(units) * self.s.resolution_um

    # ----- link ------------------------------------------------------------------------------------------
    def _on_unsolicited(self, line: str) -> None:
        fault = None
        with self._state_lock:
            move = self._move
            if line == "R":
                move.done = True
            elif line.startswith("E,") and move.running:
                move.fault = fault = f"controller error {line} ({ERRORS.get(line[2:], 'unknown code')}) to the move"
            else:
                log.warning("%s: unexpected line %r", self.name, line)
        if fault is not None:
            self.report_fault(DeviceError(self.name, "move_to_um", fault))

    def _on_link_lost(self, why: str) -> None:
        with self._state_lock:
            if self._move.running:
                self._move.fault = why
        self.report_fault(DeviceError(self.name, "link", why))

    def _fail(self, action: str, detail: str) -> DeviceError:
        """Stop (best effort), then build the error to raise."""
        self.stop_quietly()
        return DeviceError(self.name, action, detail)

    def _ask(self, command: str, action: str, accept=lambda line: line != "R") -> str:
        try:
            reply = self._line.query(command, self.s.reply_timeout_s, accept)
        except LinkError as exc:
            raise self._fail(action, str(exc)) from None
        if reply.startswith("E,"):
            raise self._fail(action, f"controller error {reply} to {command!r} ({ERRORS.get(reply[2:], 'unknown code')})")
        return reply

    def _expect_ok(self, command: str, action: str) -> None:
        reply = self._ask(command, action)
        if reply != "0":
            raise self._fail(action, f"garbled reply {reply!r} to {command!r} (expected '0')")

    # ----- XYStage ---------------------------------------------------------------------------------------
    def position_um(self) -> tuple[float, float]:
        reply = self._ask("P", "position_um")
        fields = reply.split(",")
        try:
            return self._to_um(fields[0]), self._to_um(fields[1])
        except (ValueError, IndexError):
            raise self._fail("position_um", f"garbled reply {reply!r} to 'P' (expected 'x,y,z')") from None

    def is_moving(self) -> bool:
        return self._move.running

    def _start_move(self, x_um: float, y_um: float, speed_um_s: float) -> MoveHandle:
        if self._move.running:
            try:
                self.stop()
            except DeviceError as exc:
                raise DeviceError(self.name, "move_to_um", exc.detail) from None
        percent = max(1, min(100, math.ceil(100 * speed_um_s / self.s.full_speed_um_s)))
        if percent != self._speed_percent:
            self._expect_ok(f"SMS,{percent}", "move_to_um")
            self._speed_percent = percent
        move = _Move()
        with self._state_lock:
            self._move = move
        try:
            self._line.write(f"G,{self._to_units(x_um)},{self._to_units(y_um)}")
        except LinkError as exc:
            raise self._fail("move_to_um", str(exc)) from None
        return MoveHandle(self, "move_to_um", lambda: move.done, self.clock,
                          error=lambda: move.fault or move.interrupted, fault=lambda: move.fault)

    def stop(self) -> None:
        """``K``: halt both axes now, sent at once even while a query waits for its reply. Safe from any
        thread; raises DeviceError when the link is gone or the controller does not answer ``R``."""
        with self._state_lock:
            if self._move.running:
                self._move.interrupted = "stopped before reaching the target"
        try:
            expectation = self._line.urgent("K", accept=lambda line: line == "R")
            self._line.wait_for(expectation, self.s.reply_timeout_s)
        except LinkError as exc:
            raise DeviceError(self.name, "stop", f"K not confirmed: {exc}") from None

    def close(self) -> None:
        try:
            self.stop_quietly()
        finally:
            self._line.close()
            self.forget_estop()
