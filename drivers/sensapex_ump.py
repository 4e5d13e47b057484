"""Sensapex uMp micromanipulator through the ``sensapex`` package (it bundles libum; SMCP v1 over UDP).

Traps of the library that this driver works around, so control code never meets them:

- ``UMP`` is a process-wide singleton bound to one address: drivers share it through :class:`_Link`,
  which opens it on first use and closes it (and clears the singleton) when the last driver closes.
- The package's ``goto_pos`` retries failed moves in its poll thread, where a 3-axis move that ends off
  target raises and is lost. Moves here go straight to libum's ``um_goto_position_ext``; a move is done
  when libum's drive status says so *and* the position is within ``tolerance_um`` of the target, and a
  failed or short drive is a fault.
- A silent device is not noticed by position reads (libum answers from its cache): during a move the
  driver pings the device every ``watchdog_s`` and turns a missing ACK into a fault.
- Speeds below 1 um/s crash the uMp firmware: slower moves are stepped (``step_um`` at 1 um/s, paced
  so the mean speed is the one asked for).
- libum serialises every call behind one lock, so a stop would wait behind a request in flight (up to
  ``reply_timeout_s``). :meth:`stop` first sends SMCP's ``STOP`` itself, one datagram on a socket of its
  own (the device obeys a STOP from any PC), then asks libum for the acknowledged stop.
- A keepalive thread pings the device every ``keepalive_s`` and emits a missing answer on ``faulted``:
  a silent device is noticed between moves too.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import struct
import threading
import time
from ctypes import c_float, c_int
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError
from drivers.interfaces import AxisLimits, Manipulator, MoveHandle
from drivers.units import Seconds, Um, UmPerS, UmRange

try:
    from sensapex import UMP
    from sensapex.sensapex import UMError
except ImportError as exc:  # the registry turns this into a ConfigError naming the library
    raise ImportError("sensapex is not installed (pip install 'micromanip[hardware]')", name="sensapex") from exc

log = logging.getLogger(__name__)

MIN_FIRMWARE_SPEED_UM_S = 1.0
#: SMCP v1 (umsdk ``smcp1.h``): the devices listen on this UDP port
SMCP_PORT = 55555
_SMCP_HEADER = struct.Struct(">BBHHHIHH")  # version, extra, receiver, sender, message id, options, type, blocks
_SMCP_VERSION, _SMCP_OPT_REQ, _SMCP_STOP = 0x10, 0x01, 1


class _StopLink:
    """SMCP's ``STOP`` as one datagram on a socket of its own: it leaves at once, whatever libum is
    waiting for. (The acknowledged stop follows through libum.)"""

    def __init__(self, address: str, device_id: int) -> None:
        self.target = (address, SMCP_PORT)
        self.device_id = device_id
        self.sender = 0x0F00 | (os.getpid() & 0xFF)
        self._ids = itertools.count(1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.setblocking(False)

    def send(self) -> None:
        frame = _SMCP_HEADER.pack(_SMCP_VERSION, 0, self.device_id, self.sender, next(self._ids) % 0x10000,
                                  _SMCP_OPT_REQ, _SMCP_STOP, 0)
        self.sock.sendto(frame, self.target)

    def close(self) -> None:
        self.sock.close()


class _Link:
    """The one UMP of this process, shared by every driver instance that uses the same address."""

    ump: Any = None
    address: str | None = None
    users = 0
    lock = threading.Lock()

    @classmethod
    def acquire(cls, address: str, timeout_ms: int) -> Any:
        with cls.lock:
            if cls.ump is not None and address != cls.address:
                raise DeviceError("manipulator", "open", f"libum is already open on {cls.address}; one address "
                                                         f"per process (asked for {address})")
            if cls.ump is None:
                UMP._single = None  # a previous owner may have closed it without clearing the singleton
                try:
                    cls.ump = UMP.get_ump(address=address.encode(), handle_atexit=False)
                except (RuntimeError, OSError) as exc:
                    raise DeviceError("manipulator", "open", f"libum could not open {address}: {exc}") from None
                cls.ump.set_timeout(timeout_ms)
                cls.address = address
            cls.users += 1
            return cls.ump

    @classmethod
    def release(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0 and cls.ump is not None:
                cls.ump.close()
                cls.ump, cls.address, cls.users = None, None, 0
                UMP._single = None


class SensapexManipulator(Manipulator):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        device_id: int = Field(1, ge=1, description="the id set on the uMp's touch screen unit")
        address: str = Field("169.254.255.255", description="broadcast address of the link-local network")
        limits_um: tuple[UmRange, UmRange, UmRange] = ((0, 20000), (0, 20000), (0, 20000))
        max_speed_um_s: UmPerS = Field(1000.0, gt=0)
        tolerance_um: Um = Field(1.0, gt=0, description="a move ending this close to its target has arrived")
        step_um: Um = Field(0.2, gt=0, description="step length for speeds below 1 um/s")
        reply_timeout_s: Seconds = Field(0.2, gt=0)
        watchdog_s: Seconds = Field(0.1, gt=0, description="ping interval during moves")
        keepalive_s: Seconds = Field(0.25, gt=0, description="ping interval between moves: how soon a silent "
                                     "device is noticed")

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        limits = tuple(AxisLimits(*lim) for lim in settings.limits_um)
        super().__init__(name, context.clock, limits, settings.max_speed_um_s)  # type: ignore[arg-type]
        self.s = settings
        self.dev = settings.device_id
        self._ump = _Link.acquire(settings.address, int(settings.reply_timeout_s * 1000))
        self._stepper: threading.Thread | None = None
        self._cancel = threading.Event()
        self._fault: str | None = None
        self._stop_link = _StopLink(settings.address, self.dev)
        self._closing = threading.Event()
        self._asked_s: float | None = None  # when the oldest ping still unanswered was asked (None: none)
        try:
            found = self._call("open", self._ump.list_devices)
            if self.dev not in found:
                raise DeviceError(name, "open", f"no uMp with id {self.dev} on {settings.address} (found: {found}); "
                                                "check the cable and the link-local address (docs/hardware.md)")
            self._ump.get_device(self.dev, n_axes=3)
            self.position_um()
        except DeviceError:
            self._stop_link.close()
            _Link.release()
            raise
        self._keepalive = threading.Thread(target=self._keep_alive, name=f"{name}-keepalive", daemon=True)
        self._keepalive.start()

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> SensapexManipulator:
        return cls(name, settings, context)

    # ----- library calls: the one place UMError becomes DeviceError -----------------------------------
    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UMError as exc:
            raise DeviceError(self.name, action, f"libum: {exc}") from None

    def position_um(self) -> np.ndarray:
        timeout_ms = int(self.s.reply_timeout_s * 1000)
        pos = self._call("position_um", self._ump.get_pos, self.dev, timeout=timeout_ms)
        return np.asarray(pos[:3], dtype=float)

    def is_moving(self) -> bool:
        if self._stepper is not None and self._stepper.is_alive():
            return True
        return self._drive_status() == 1

    def ping(self) -> None:
        """One request and its ACK: proves the device is there (position reads may come from a cache)."""
        self._call("ping", self._ping, self._ump)

    def _ping(self, ump: Any) -> None:
        """libum's ping (raises UMError). Silence counts from the first ping left unanswered (a failed
        ping keeps it counting) until one is acknowledged."""
        if self._asked_s is None:
            self._asked_s = self.clock.now()
        ump.ping_device(self.dev)
        self._asked_s = None

    def silent_s(self) -> float:
        """How long the oldest unanswered ping has waited (0 while none waits). libum's calls queue behind each
        other on its lock, so a ping behind a stalled call waits out that call's reply timeout before its
        own: a watchdog reading this notices a hung uMp sooner than the failing calls do. Waiting, not the
        time since the last answer, is what counts: a keepalive thread that ran late on a busy host (the
        pause between pings included) has not heard a silent device."""
        asked = self._asked_s
        return 0.0 if asked is None else self.clock.now() - asked

    def _keep_alive(self) -> None:
        """Ping every ``keepalive_s``; a silent device is reported on ``faulted`` (once until it answers)."""
        reported = False
        while not self._closing.wait(self.s.keepalive_s):
            ump = self._ump
            if ump is None:
                return
            try:
                self._ping(ump)
                reported = False
            except (UMError, AttributeError, TypeError) as exc:
                if not reported and not self._closing.is_set():
                    reported = True
                    self.report_fault(DeviceError(self.name, "keepalive", f"no reply from the uMp ({exc})"))

    # ----- motion ----------------------------------------------------------------------------------------
    def _drive_status(self) -> int:
        """libum's position-drive status (0 done, 1 busy, -1 failed), read raw: ``UMP.call`` would raise
        on the negative value instead of returning it."""
        with self._ump.lock:
            return int(self._ump.lib.um_get_drive_status(self._ump.h, c_int(self.dev)))

    def _goto(self, target: np.ndarray, speed_um_s: float) -> None:
        """One ``GOTO_POS`` through libum, all axes together; completion comes back as notification 104.
        (The package's ``goto_pos`` retry machinery can lose a failed 3-axis move in its poll thread.)"""
        coords = [c_float(float(v)) for v in target] + [c_float(float("nan"))]
        speeds = [c_float(float(speed_um_s))] * 3 + [c_float(0.0)]
        self._call("move_to_um", self._ump.call, "um_goto_position_ext", c_int(self.dev), *coords, *speeds,
                   c_int(1), c_int(0))

    def _start_move(self, target_um: np.ndarray, speed_um_s: float) -> MoveHandle:
        self._cancel.set()
        if self._stepper is not None:
            self._stepper.join(timeout=1.0)
        self._cancel.clear()
        self._fault = None
        target = target_um.astype(float)
        if speed_um_s >= MIN_FIRMWARE_SPEED_UM_S:
            self._goto(target, speed_um_s)
        else:
            self._stepper = threading.Thread(target=self._step_slowly, args=(target, speed_um_s),
                                             name=f"{self.name}-stepper", daemon=True)
            self._stepper.start()
        return self._handle(target)

    def _step_slowly(self, target: np.ndarray, speed_um_s: float) -> None:
        """Steps of ``step_um`` at the firmware's minimum speed, each followed by a pause."""
        try:
            start = self.position_um()
            distance = float(np.linalg.norm(target - start))
            n = max(1, math.ceil(distance / self.s.step_um))
            period_s = distance / n / speed_um_s
            t0 = time.monotonic()
            for i in range(1, n + 1):
                if self._cancel.is_set():
                    return
                self._goto(start + (target - start) * i / n, MIN_FIRMWARE_SPEED_UM_S)
                deadline = time.monotonic() + 10 * period_s + 1.0
                while self._drive_status() == 1 and time.monotonic() < deadline and not self._cancel.is_set():
                    time.sleep(0.005)
                if self._drive_status() == -1:
                    self._fault = f"step {i}/{n} failed"
                    return
                self._cancel.wait(max(0.0, t0 + i * period_s - time.monotonic()))
        except DeviceError as exc:
            self._fault = exc.detail

    def _handle(self, target: np.ndarray) -> MoveHandle:
        last_ping = [time.monotonic()]

        def off_target_um() -> float:
            return float(np.max(np.abs(np.asarray(self._ump.get_pos(self.dev, timeout=0)[:3]) - target)))

        def done() -> bool:
            if self._stepper is not None and self._stepper.is_alive():
                return False
            try:
                return self._drive_status() == 0 and off_target_um() <= self.s.tolerance_um
            except UMError:
                return False

        def fault() -> str | None:
            """What the device reported: a failed drive or step, no answer, a libum error."""
            if self._fault is not None:
                return self._fault
            stepping = self._stepper is not None and self._stepper.is_alive()
            try:
                if not stepping and self._drive_status() == -1:
                    return f"the uMp reported a failed drive, {off_target_um():.2f} um from the target"
            except UMError as exc:
                return f"libum: {exc}"
            if time.monotonic() - last_ping[0] > self.s.watchdog_s:
                last_ping[0] = time.monotonic()
                try:
                    self._ping(self._ump)
                except UMError as exc:
                    return f"no reply from the uMp during the move ({exc})"
            return None

        def problem() -> str | None:
            """Why the move did not reach its target: a fault, or a drive that ended short (stopped?)."""
            if (reported := fault()) is not None:
                return reported
            stepping = self._stepper is not None and self._stepper.is_alive()
            try:
                if not stepping and self._drive_status() == 0 and off_target_um() > self.s.tolerance_um:
                    return f"the drive ended {off_target_um():.2f} um from the target (stopped?)"
            except UMError as exc:
                return f"libum: {exc}"
            return None

        return MoveHandle(self, "move_to_um", done, self.clock, problem, fault)

    def stop(self) -> None:
        """Halt now: SMCP ``STOP`` on the stop link at once, then libum's acknowledged stop. Safe from any
        thread; raises DeviceError when the device does not acknowledge."""
        self._cancel.set()
        try:
            self._stop_link.send()
        except OSError as exc:
            log.error("%s: STOP datagram not sent: %s", self.name, exc)
        ump = self._ump
        if ump is None:
            raise DeviceError(self.name, "stop", "not connected")
        try:
            ump.stop(self.dev, reason="stop")
        except (UMError, AttributeError, TypeError) as exc:
            raise DeviceError(self.name, "stop", f"STOP sent, not acknowledged: {exc}") from None

    def close(self) -> None:
        if self._ump is None:
            return
        self._closing.set()
        self.stop_quietly()
        self._keepalive.join(timeout=2.0)
        if self._stepper is not None:
            self._stepper.join(timeout=1.0)
        self._ump = None
        self._stop_link.close()
        _Link.release()
