"""Stop-aware waiting and the one process-wide emergency stop.

Every long action (a move, a calibration, a trial) runs with a :class:`StopToken`: its sleeps and waits
check the token, so a stop request or the emergency stop ends the action within one poll interval.
:func:`stop_in_parallel` stops several devices at once, one thread each (:class:`StopBatch`): a device whose
link is stalled delays no other (each driver's ``stop`` is sent at once, past any query in flight, then
confirmed).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Callable, Generic, Protocol, TypeVar

from psygnal import Signal

from drivers.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest uninterrupted sleep on a real clock: the reaction time to a stop request.
POLL_S = 0.01


#: How long the emergency stop waits for the devices to confirm (their stop commands go out at once)
CONFIRM_S = 2.0


class StopBatch:
    """Stop commands sent to several devices at once, one thread each, so a device whose link is stalled
    delays no other; :meth:`confirm` waits for some or all of them. A caller that needs one device still
    before its next command (the manipulator before the pipette's retraction) waits for that one only."""

    def __init__(self, devices: list[Any]) -> None:
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()
        self._started_s = time.monotonic()
        # by identity, not name: two devices may share a name (a driver and the twin it rehearses against)
        self._threads = [(d, threading.Thread(target=self._stop_one, args=(d,), name=f"stop:{d.name}", daemon=True))
                         for d in devices]
        for _, thread in self._threads:
            thread.start()

    def _stop_one(self, device: Any) -> None:
        try:
            device.stop()
        except Exception as exc:  # a failing device must not keep the others moving
            with self._lock:
                self._failures[device.name] = str(exc)
            log.critical("stop: %s did not stop cleanly: %s", device.name, exc)

    def confirm(self, within_s: float, only: list[Any] | None = None) -> dict[str, str]:
        """Wait until ``within_s`` after the stops went out for ``only`` these devices (default: all).
        Returns {device name: why its stop failed or was not confirmed in time} for those (each failure
        already logged)."""
        deadline = self._started_s + within_s
        names = []
        for device, thread in self._threads:
            if only is not None and not any(device is d for d in only):
                continue
            names.append(device.name)
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with self._lock:
                    self._failures.setdefault(device.name, f"stop not confirmed within {within_s:g} s")
        with self._lock:
            return {n: self._failures[n] for n in names if n in self._failures}


def stop_in_parallel(devices: list[Any], confirm_s: float = CONFIRM_S) -> dict[str, str]:
    """Stop every device at once (:class:`StopBatch`) and wait up to ``confirm_s`` for them all. Returns
    {device name: why its stop failed or was not confirmed in time} (each already logged)."""
    return StopBatch(devices).confirm(confirm_s)


class Stopped(Exception):
    """Raised inside a stop-aware action when its token is stopped or the emergency stop fires."""


class Stoppable(Protocol):
    name: str

    def stop(self) -> None: ...


class EmergencyStop:
    """One switch that halts every registered device and stops every running action.

    Devices register themselves on construction (weakly: a closed, dropped device is forgotten).
    After :meth:`trigger`, motion commands are refused until an operator calls :meth:`reset`.
    """

    triggered_changed = Signal(bool, str)

    def __init__(self) -> None:
        self._devices: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._event = threading.Event()
        self._reason = ""
        self._lock = threading.Lock()

    def register(self, device: Stoppable) -> None:
        self._devices.add(device)

    def unregister(self, device: Stoppable) -> None:
        self._devices.discard(device)

    @property
    def triggered(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def trigger(self, reason: str = "operator", confirm_s: float = CONFIRM_S) -> list[str]:
        """Stop every device now, all in parallel (each driver sends its stop at once, even behind a
        stalled query); return the names of devices whose stop failed or was not confirmed within
        ``confirm_s`` (already logged). Motion stays refused until :meth:`reset`."""
        with self._lock:
            self._reason = reason
            self._event.set()
            devices = list(self._devices)
        log.critical("EMERGENCY STOP (%s): halting %d devices", reason, len(devices))
        failed = stop_in_parallel(devices, confirm_s)
        self.triggered_changed.emit(True, reason)
        return sorted(failed)

    def reset(self) -> None:
        """Re-arm after an operator has checked the rig."""
        with self._lock:
            self._event.clear()
            self._reason = ""
        log.warning("emergency stop reset")
        self.triggered_changed.emit(False, "")


#: The process-wide emergency stop.
ESTOP = EmergencyStop()


class StopToken:
    """A stop flag for one action, linked to its parent token and to the emergency stop."""

    def __init__(self, clock: Clock, parent: StopToken | None = None, estop: EmergencyStop = ESTOP) -> None:
        self.clock = clock
        self._parent = parent
        self._estop = estop
        self._event = threading.Event()
        self._reason = ""

    def stop(self, reason: str = "stop requested") -> None:
        self._reason = reason
        self._event.set()

    @property
    def stopped(self) -> bool:
        return (
            self._event.is_set()
            or self._estop.triggered
            or (self._parent is not None and self._parent.stopped)
        )

    @property
    def reason(self) -> str:
        if self._event.is_set():
            return self._reason
        if self._estop.triggered:
            return f"emergency stop ({self._estop.reason})"
        if self._parent is not None:
            return self._parent.reason
        return ""

    def child(self) -> StopToken:
        return StopToken(self.clock, parent=self, estop=self._estop)

    def check(self) -> None:
        """Raise :class:`Stopped` if this action must end."""
        if self.stopped:
            raise Stopped(self.reason)

    def sleep(self, dt_s: float) -> None:
        """Sleep ``dt_s`` seconds in slices, raising :class:`Stopped` as soon as a stop is requested."""
        self.check()
        if self.clock.is_simulated:
            self.clock.sleep(dt_s)
            self.check()
            return
        deadline = self.clock.now() + dt_s
        while (remaining := deadline - self.clock.now()) > 0:
            self.clock.sleep(min(POLL_S, remaining))
            self.check()

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = POLL_S) -> bool:
        """Wait for ``predicate`` like :meth:`Clock.wait_until`, raising :class:`Stopped` on a stop."""

        def stop_aware() -> bool:
            self.check()
            return predicate()

        return self.clock.wait_until(stop_aware, timeout_s, poll_s)


class Task(Generic[T]):
    """Run ``fn(token)`` in a background thread; stop it, wait for it, read its result or error."""

    finished = Signal(object)  # emits the Task itself

    def __init__(self, name: str, fn: Callable[[StopToken], T], token: StopToken) -> None:
        self.name = name
        self.token = token
        self._fn = fn
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"task:{name}", daemon=True)

    def start(self) -> Task[T]:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._result = self._fn(self.token)
        except BaseException as exc:  # kept and re-raised to whoever calls result()
            self._error = exc
            if not isinstance(exc, Stopped):
                log.exception("task %s failed", self.name)
        finally:
            self.finished.emit(self)

    def stop(self, reason: str = "stop requested") -> None:
        self.token.stop(reason)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive() and self._thread.ident is not None

    def join(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def result(self, timeout_s: float | None = None) -> T:
        """The return value; re-raises the task's exception (including :class:`Stopped`)."""
        if not self.join(timeout_s):
            raise TimeoutError(f"task {self.name} still running after {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]
