"""PI piezo Z stage (focus) through PI's ``pipython`` over its pure-Python serial gateway (GCS 2).

Servo on (``SVO``) at open; the controller's travel range (``TMN?``/``TMX?``) must contain the
configured limits, so our checks are never looser than the controller's. Moves are ``MOV`` and return
at once; a move is done when ``ONT?`` says on target. pipython is not thread-safe, so every call holds
one lock. A GCS error, a timeout or a lost link stops the axis (``#24``, best effort) and raises one
:class:`DeviceError`; a lost link is also emitted on ``faulted``. :meth:`stop` never waits behind a query
in flight: ``#24`` is a single byte with no reply, so while pipython holds the link it is written
straight to the port, and confirmed (``ERR?`` reads back the controller's "stopped by command") once
the link is free.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import serial
from pipython import GCSDevice, GCSError
from pipython.pidevice.interfaces.piserial import PISerial
from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError
from drivers.interfaces import AxisLimits, FocusDrive, MoveHandle
from drivers.units import Seconds, Um, UmPerS, UmRange

log = logging.getLogger(__name__)
# pipython gives its logger a console handler of its own and logs every command at DEBUG: under our
# DEBUG root logger that would print each query of a rig. Its warnings and errors still come through.
logging.getLogger("PIlogger").setLevel(logging.WARNING)


class PiezoFocus(FocusDrive):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: str = Field(description="serial port of the controller (/dev/ttyUSB0, COM4)")
        baud: int = 115200
        axis: str = "1"
        limits_um: UmRange = (0.0, 100.0)
        max_speed_um_s: UmPerS = Field(1000.0, gt=0)
        z_offset_um: Um = Field(0.0, description="focus z = piezo position + z_offset_um")
        timeout_s: Seconds = Field(1.0, gt=0)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        off = settings.z_offset_um
        super().__init__(name, context.clock, AxisLimits(settings.limits_um[0] + off, settings.limits_um[1] + off),
                         settings.max_speed_um_s)
        self.s = settings
        self._lock = threading.Lock()
        self._dev: Any = None
        self._gateway: Any = None
        self._lost: str | None = None
        try:
            gateway = PISerial(settings.port, settings.baud)
        except (serial.SerialException, OSError, GCSError) as exc:
            raise DeviceError(name, "open", f"cannot open serial port {settings.port!r}: {exc}") from None
        gateway.settimeout(int(settings.timeout_s * 1000))
        self._gateway = gateway
        try:
            self._dev = self._call("open", lambda: GCSDevice(gateway=gateway))
            self.identity = self._call("open", lambda: self._dev.qIDN().strip())
            self._call("open", lambda: self._dev.SVO(settings.axis, True))
            lo = self._call("open", lambda: self._dev.qTMN(settings.axis)[settings.axis])
            hi = self._call("open", lambda: self._dev.qTMX(settings.axis)[settings.axis])
            if settings.limits_um[0] < lo or settings.limits_um[1] > hi:
                raise DeviceError(name, "open", f"limits_um {list(settings.limits_um)} exceed the controller's "
                                                f"travel range [{lo:g}, {hi:g}] um")
        except DeviceError:
            self.close()
            raise

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> PiezoFocus:
        return cls(name, settings, context)

    def _call(self, action: str, fn: Callable[[], Any]) -> Any:
        """One pipython call under the lock; faults stop the axis and become a DeviceError."""
        if self._lost:
            raise DeviceError(self.name, action, self._lost)
        try:
            with self._lock:
                return fn()
        except GCSError as exc:
            detail = f"controller error: {exc}"
        except (serial.SerialException, OSError) as exc:
            self._lost = f"serial link lost ({exc.__class__.__name__}: {exc})"
            self.report_fault(DeviceError(self.name, "link", self._lost))
            raise DeviceError(self.name, action, self._lost) from None
        except (ValueError, KeyError) as exc:
            detail = f"garbled reply ({exc})"
        self.stop_quietly()
        raise DeviceError(self.name, action, detail)

    def z_um(self) -> float:
        return float(self._call("z_um", lambda: self._dev.qPOS(self.s.axis)[self.s.axis])) + self.s.z_offset_um

    def is_moving(self) -> bool:
        return not self._call("is_moving", lambda: self._dev.qONT(self.s.axis)[self.s.axis])

    def _start_move(self, z_um: float, speed_um_s: float) -> MoveHandle:
        axis = self.s.axis
        self._call("move_to_um", lambda: self._dev.VEL(axis, speed_um_s))
        self._call("move_to_um", lambda: self._dev.MOV(axis, z_um - self.s.z_offset_um))
        return MoveHandle(self, "move_to_um", lambda: not self.is_moving(), self.clock)

    def stop(self) -> None:
        """``#24`` (stop all), at once even while a query holds the link. Safe from any thread; raises
        DeviceError when the link is gone or the stop is not confirmed."""
        if self._dev is None or self._lost:
            raise DeviceError(self.name, "stop", self._lost or "not connected")
        if not self._lock.acquire(blocking=False):  # a query in flight: #24 goes out now, bypassing it
            try:
                self._gateway._ser.write(b"\x18")  # pipython's port; #24 has no reply to confuse the query
            except (serial.SerialException, OSError) as exc:
                raise DeviceError(self.name, "stop", f"#24 not sent: {exc}") from None
            if not self._lock.acquire(timeout=self.s.timeout_s):
                raise DeviceError(self.name, "stop", f"#24 sent, not confirmed: link busy for {self.s.timeout_s:g} s")
        try:
            self._dev.StopAll(noraise=True)  # (again) #24, and ERR? reads back error 10: the controller heard it
        except GCSError as exc:
            raise DeviceError(self.name, "stop", f"#24 not confirmed: controller error: {exc}") from None
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(self.name, "stop", f"#24 not confirmed: {exc}") from None
        finally:
            self._lock.release()

    def close(self) -> None:
        try:
            if self._dev is not None and not self._lost:
                self.stop_quietly()
        finally:
            if self._dev is not None:
                # pipython keeps every device's connection callback in one class-wide list, so a device
                # left registered reacts to the *next* gateway that connects (and writes to its own
                # closed port): unregister it explicitly.
                PISerial.unregister_connection_status_changed_callback(self._dev.connection_status_changed)
                try:
                    self._dev.close()
                except Exception as exc:
                    log.warning("%s: close: %s", self.name, exc)
                self._dev = None
            self._gateway.close()
            self.forget_estop()
