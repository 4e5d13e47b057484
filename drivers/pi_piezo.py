"""PI piezo Z stage (focus) through PI's ``pipython`` over its pure-Python serial gateway (GCS 2).

Servo on (``SVO``) at open; the controller's travel range (``TMN?``/``TMX?``) must contain the
configured limits, so our checks are never looser than the controller's. Moves are ``MOV`` and return
at once; a move is done when ``ONT?`` says on target. pipython is not thread-safe, so every call holds
one lock. A GCS error, a timeout or a lost link stops the axis (``#24``, best effort) and raises one
:class:`DeviceError`.
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
            detail = self._lost
        except (ValueError, KeyError) as exc:
            detail = f"garbled reply ({exc})"
        self.stop()
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
        """``#24`` (stop all). Safe from any thread; a dead link is logged, not raised."""
        if self._dev is None or self._lost:
            log.error("%s: cannot stop, %s", self.name, self._lost or "not connected")
            return
        try:
            with self._lock:
                self._dev.StopAll(noraise=True)
        except Exception as exc:  # stop must never raise; the fault is reported by the caller's error
            log.error("%s: stop (#24) failed: %s", self.name, exc)

    def close(self) -> None:
        try:
            self.stop()
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
