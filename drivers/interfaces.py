"""Typed device interfaces: what control code may ask of a camera, stage, focus drive, manipulator, pump.

Every motion goes through a public method here that validates limits and speed *before* the driver's
``_start_*`` hook runs, so no driver can forget the checks. Every move returns a :class:`MoveHandle`.
A fault a driver notices outside any call (a lost link, a pump's alarm, a failed keepalive) is emitted
as a :class:`DeviceError` on the device's ``faulted`` signal, so a supervisor hears of it at once.
Units are in the names: um, um/s, nL/s, s, ms.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import numpy as np
from psygnal import Signal

from drivers.clock import Clock
from drivers.errors import DeviceError, LimitError
from drivers.frame import RawImage
from drivers.stop import ESTOP, EmergencyStop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AxisLimits:
    """Travel range of one axis in um."""

    min_um: float
    max_um: float

    def __post_init__(self) -> None:
        if not self.min_um < self.max_um:
            raise ValueError(f"axis limits need min_um < max_um, got [{self.min_um}, {self.max_um}]")

    def contains(self, value_um: float) -> bool:
        return self.min_um <= value_um <= self.max_um


@dataclass(frozen=True)
class Roi:
    """Camera region of interest in sensor pixels."""

    x: int
    y: int
    width: int
    height: int

    def on_offset_grid(self) -> "Roi":
        """The same region with its offsets rounded down to steps common sensors accept (x in 16 px, y in
        2 px): where the app places an ROI around the tip."""
        return Roi(self.x // 16 * 16, self.y // 2 * 2, self.width, self.height)


class MoveHandle:
    """A motion in progress. ``wait`` blocks (on the device's clock) until it ends; ``check`` asks, without
    waiting, whether the device has reported a fault for it; ``stop`` halts it.

    ``error`` is why the move did not (or will not) reach its target, a stop included; ``fault`` is the
    part of that which the device reported as a failure (a controller error, a failed drive, a lost
    link): a move stopped or superseded on purpose is not a fault.
    """

    def __init__(
        self,
        device: Device,
        action: str,
        is_done: Callable[[], bool],
        clock: Clock,
        error: Callable[[], str | None] = lambda: None,
        fault: Callable[[], str | None] | None = None,
    ) -> None:
        self.device = device
        self.action = action
        self._is_done = is_done
        self._error = error
        self._fault = fault or error
        self._clock = clock

    @property
    def done(self) -> bool:
        return self._is_done()

    def wait(self, timeout_s: float = 30.0) -> None:
        """Block until the move ends. On timeout or a device fault: stop the device, raise DeviceError."""
        finished = self._clock.wait_until(lambda: self._is_done() or self._error() is not None, timeout_s)
        problem = self._error()
        if problem is None and finished:
            return
        self.device.stop_quietly()
        raise DeviceError(self.device.name, self.action, problem or f"timed out after {timeout_s:g} s")

    def check(self) -> None:
        """Raise DeviceError (after stopping the device) if the device reported a fault for this move."""
        problem = self._fault()
        if problem is not None:
            self.device.stop_quietly()
            raise DeviceError(self.device.name, self.action, problem)

    def stop(self) -> None:
        self.device.stop()


class Device(ABC):
    """Base of every device. A device that moves or pumps registers with the emergency stop so one call
    can halt it (a camera does not: stopping motion must never stop the live video)."""

    kind: ClassVar[str] = "device"
    moves: ClassVar[bool] = True
    faulted = Signal(object)  # DeviceError noticed outside any call, emitted from the driver's own thread

    def __init__(self, name: str, clock: Clock, estop: EmergencyStop = ESTOP) -> None:
        self.name = name
        self.clock = clock
        self._estop = estop
        if self.moves:
            estop.register(self)

    @property
    def estop(self) -> EmergencyStop:
        """The emergency stop this device answers to."""
        return self._estop

    def use_estop(self, estop: EmergencyStop) -> None:
        """Answer to another emergency stop than the process-wide one (the digital twin's devices, which
        stand for hardware behind a link: the program's stop must reach them through their drivers)."""
        self._estop.unregister(self)
        self._estop = estop
        if self.moves:
            estop.register(self)

    @abstractmethod
    def stop(self) -> None:
        """Halt any motion or flow now: safe to call at any time, from any thread, and never queued behind
        a query in flight. Raises DeviceError when the device could not be told or did not confirm."""

    def stop_quietly(self) -> str | None:
        """:meth:`stop` on a path that is already reporting another error: a failure is logged and
        returned, not raised."""
        try:
            self.stop()
        except Exception as exc:  # the caller's own error is the one to report
            log.error("%s: stop failed: %s", self.name, exc)
            return str(exc)
        return None

    def silent_s(self) -> float | None:
        """Seconds the device's oldest unanswered keepalive ping has waited (0 while none waits), for a
        watchdog that must not wait out the link's own reply timeout; None where the driver does not track it."""
        return None

    def report_fault(self, error: DeviceError) -> None:
        """A fault noticed outside any call (a driver's reader or keepalive thread): log, emit ``faulted``."""
        log.error("%s", error)
        self.faulted.emit(error)

    def close(self) -> None:
        """Release the device; stops it first."""
        try:
            self.stop_quietly()
        finally:
            self.forget_estop()

    def forget_estop(self) -> None:
        """Leave the emergency stop's list: a closed device cannot be stopped, and trying would only
        add a failure to every later stop."""
        self._estop.unregister(self)

    def _require_motion_allowed(self, action: str) -> None:
        if self._estop.triggered:
            raise DeviceError(self.name, action, f"emergency stop is active ({self._estop.reason}); reset it first")

    def _check_speed(self, action: str, speed_um_s: float | None, max_speed_um_s: float) -> float:
        if speed_um_s is None:
            return max_speed_um_s
        if not (math.isfinite(speed_um_s) and speed_um_s > 0):
            raise LimitError(self.name, action, f"speed must be > 0 um/s, got {speed_um_s}")
        if speed_um_s > max_speed_um_s:
            raise LimitError(self.name, action, f"speed {speed_um_s:g} um/s exceeds the limit {max_speed_um_s:g} um/s")
        return speed_um_s

    def _check_axes(self, action: str, target_um: Sequence[float], limits: Sequence[AxisLimits], names: str) -> None:
        for value, lim, axis in zip(target_um, limits, names):
            if not math.isfinite(value):
                raise LimitError(self.name, action, f"{axis} target is not finite ({value})")
            if not lim.contains(value):
                raise LimitError(
                    self.name, action, f"{axis}={value:.2f} um outside limits [{lim.min_um:g}, {lim.max_um:g}] um"
                )


class Camera(Device):
    """A monochrome scientific camera."""

    kind = "camera"
    moves = False
    image_ready = Signal(object)  # RawImage, emitted from the camera's grab thread while streaming

    @property
    @abstractmethod
    def sensor_shape(self) -> tuple[int, int]:
        """(height, width) of the full sensor in pixels."""

    @property
    @abstractmethod
    def sensor_pixel_um(self) -> float:
        """Physical pixel pitch on the sensor in um."""

    @property
    @abstractmethod
    def roi(self) -> Roi: ...

    @abstractmethod
    def set_roi(self, roi: Roi) -> None: ...

    @property
    @abstractmethod
    def exposure_ms(self) -> float: ...

    @abstractmethod
    def set_exposure_ms(self, exposure_ms: float) -> None: ...

    @property
    @abstractmethod
    def gain_db(self) -> float: ...

    @abstractmethod
    def set_gain_db(self, gain_db: float) -> None: ...

    @property
    @abstractmethod
    def frame_rate_hz(self) -> float: ...

    @abstractmethod
    def set_frame_rate_hz(self, frame_rate_hz: float) -> None: ...

    @property
    @abstractmethod
    def bit_depth(self) -> int:
        """Bits per pixel delivered (8 for Mono8, 12 for Mono12 in a uint16 container)."""

    @abstractmethod
    def snap(self, timeout_s: float = 2.0) -> RawImage:
        """Acquire one image (software trigger) and return it."""

    @abstractmethod
    def start_streaming(self) -> None:
        """Grab continuously, emitting ``image_ready`` for the newest image; older ones are skipped."""

    @abstractmethod
    def stop_streaming(self) -> None: ...

    @property
    @abstractmethod
    def frames_skipped(self) -> int:
        """Images the camera produced that nobody consumed while streaming."""

    def stop(self) -> None:
        """A camera has no motion to halt; stopping it ends streaming (used when it closes)."""
        self.stop_streaming()


class XYStage(Device):
    """A motorised XY stage (positions of the sample in um)."""

    kind = "stage"

    def __init__(self, name: str, clock: Clock, x_limits: AxisLimits, y_limits: AxisLimits,
                 max_speed_um_s: float, estop: EmergencyStop = ESTOP) -> None:
        super().__init__(name, clock, estop)
        self.x_limits = x_limits
        self.y_limits = y_limits
        self.max_speed_um_s = max_speed_um_s

    @abstractmethod
    def position_um(self) -> tuple[float, float]: ...

    @abstractmethod
    def is_moving(self) -> bool: ...

    def move_to_um(self, x_um: float, y_um: float, speed_um_s: float | None = None) -> MoveHandle:
        """Validate, then start an absolute move; returns at once."""
        self._require_motion_allowed("move_to_um")
        speed = self._check_speed("move_to_um", speed_um_s, self.max_speed_um_s)
        self._check_axes("move_to_um", (x_um, y_um), (self.x_limits, self.y_limits), "xy")
        return self._start_move(float(x_um), float(y_um), speed)

    def move_by_um(self, dx_um: float, dy_um: float, speed_um_s: float | None = None) -> MoveHandle:
        x, y = self.position_um()
        return self.move_to_um(x + dx_um, y + dy_um, speed_um_s)

    @abstractmethod
    def _start_move(self, x_um: float, y_um: float, speed_um_s: float) -> MoveHandle: ...


class FocusDrive(Device):
    """Objective focus or a piezo Z stage: the focal plane's height in um (larger = higher)."""

    kind = "focus"

    def __init__(self, name: str, clock: Clock, limits: AxisLimits, max_speed_um_s: float,
                 estop: EmergencyStop = ESTOP) -> None:
        super().__init__(name, clock, estop)
        self.limits = limits
        self.max_speed_um_s = max_speed_um_s

    @abstractmethod
    def z_um(self) -> float: ...

    @abstractmethod
    def is_moving(self) -> bool: ...

    def move_to_um(self, z_um: float, speed_um_s: float | None = None) -> MoveHandle:
        self._require_motion_allowed("move_to_um")
        speed = self._check_speed("move_to_um", speed_um_s, self.max_speed_um_s)
        self._check_axes("move_to_um", (z_um,), (self.limits,), "z")
        return self._start_move(float(z_um), speed)

    def move_by_um(self, dz_um: float, speed_um_s: float | None = None) -> MoveHandle:
        return self.move_to_um(self.z_um() + dz_um, speed_um_s)

    @abstractmethod
    def _start_move(self, z_um: float, speed_um_s: float) -> MoveHandle: ...


class Manipulator(Device):
    """A 3-axis micromanipulator holding the pipette; positions in its own axes (x, y, z) in um."""

    kind = "manipulator"

    def __init__(self, name: str, clock: Clock, limits: tuple[AxisLimits, AxisLimits, AxisLimits],
                 max_speed_um_s: float, estop: EmergencyStop = ESTOP) -> None:
        super().__init__(name, clock, estop)
        self.limits = limits
        self.max_speed_um_s = max_speed_um_s

    @abstractmethod
    def position_um(self) -> np.ndarray:
        """Current (x, y, z) in um, shape (3,)."""

    @abstractmethod
    def is_moving(self) -> bool: ...

    #: Checks a move in lab coordinates before it starts, whoever asks for it: called as
    #: ``guard(name, current_um, target_um, speed_um_s)``, returns the speed allowed or raises LimitError.
    #: The application installs one once the rig is calibrated (``control.safety.TipGuard``).
    guard: Callable[[str, np.ndarray, np.ndarray, float], float] | None = None

    def move_to_um(self, target_um: Sequence[float], speed_um_s: float | None = None) -> MoveHandle:
        self._require_motion_allowed("move_to_um")
        target = np.asarray(target_um, dtype=float)
        if target.shape != (3,):
            raise LimitError(self.name, "move_to_um", f"target needs 3 coordinates (x, y, z), got shape {target.shape}")
        speed = self._check_speed("move_to_um", speed_um_s, self.max_speed_um_s)
        self._check_axes("move_to_um", target, self.limits, "xyz")
        guard = self.guard
        if guard is not None:
            speed = guard(self.name, self.position_um(), target, speed)
        return self._start_move(target, speed)

    def move_by_um(self, delta_um: Sequence[float], speed_um_s: float | None = None) -> MoveHandle:
        return self.move_to_um(self.position_um() + np.asarray(delta_um, dtype=float), speed_um_s)

    @abstractmethod
    def _start_move(self, target_um: np.ndarray, speed_um_s: float) -> MoveHandle: ...


class Pump(Device):
    """A pump connected to the pipette. Positive rate aspirates (draws liquid into the pipette)."""

    kind = "pump"

    def __init__(self, name: str, clock: Clock, max_rate_nl_s: float, estop: EmergencyStop = ESTOP) -> None:
        super().__init__(name, clock, estop)
        self.max_rate_nl_s = max_rate_nl_s
        self.flow_started_s: float | None = None  # when the current flow was commanded (the deadline's origin)

    def aspirate(self, rate_nl_s: float) -> None:
        """Start drawing liquid in at ``rate_nl_s``; runs until :meth:`stop`."""
        self._start("aspirate", rate_nl_s, +1)

    def dispense(self, rate_nl_s: float) -> None:
        """Start pushing liquid out at ``rate_nl_s``; runs until :meth:`stop`."""
        self._start("dispense", rate_nl_s, -1)

    def _start(self, action: str, rate_nl_s: float, sign: int) -> None:
        self._require_motion_allowed(action)
        if not (math.isfinite(rate_nl_s) and rate_nl_s > 0):
            raise LimitError(self.name, action, f"rate must be > 0 nL/s, got {rate_nl_s}")
        if rate_nl_s > self.max_rate_nl_s:
            raise LimitError(self.name, action, f"rate {rate_nl_s:g} nL/s exceeds the limit {self.max_rate_nl_s:g} nL/s")
        # a flow re-commanded in the same direction keeps its origin: its deadline cannot be extended
        was_flowing = self.flow_started_s is not None and self.rate_nl_s() * sign > 0
        started = self.clock.now()
        self._start_flow(sign * float(rate_nl_s))
        if not was_flowing:
            self.flow_started_s = started

    @abstractmethod
    def _start_flow(self, signed_rate_nl_s: float) -> None: ...

    @abstractmethod
    def rate_nl_s(self) -> float:
        """Commanded signed rate now (0 when stopped)."""

    @abstractmethod
    def volume_nl(self) -> float:
        """Net volume aspirated since the device was opened, in nL."""
