"""Clocks: real time for the rig and the GUI, lockstep simulated time for deterministic campaigns.

Everything that waits or timestamps goes through a :class:`Clock`, never ``time`` directly, so that the
same control code runs against hardware in real time and against the digital twin faster than real time.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Callable


class Clock(ABC):
    """Source of time in seconds. ``now()`` is monotonic; its origin is arbitrary."""

    @abstractmethod
    def now(self) -> float:
        """Current time in seconds."""

    @abstractmethod
    def sleep(self, dt_s: float) -> None:
        """Let ``dt_s`` seconds pass (block on a real clock, advance a simulated one)."""

    @property
    @abstractmethod
    def is_simulated(self) -> bool:
        """True when time only moves as the program advances it."""

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.005) -> bool:
        """Poll ``predicate`` until it is true or ``timeout_s`` passes; return whether it became true."""
        deadline = self.now() + timeout_s
        while True:
            if predicate():
                return True
            remaining = deadline - self.now()
            if remaining <= 0:
                return False
            self.sleep(min(poll_s, remaining))


class RealClock(Clock):
    """Wall-clock time from ``time.monotonic``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, dt_s: float) -> None:
        if dt_s > 0:
            time.sleep(dt_s)

    @property
    def is_simulated(self) -> bool:
        return False


class LockstepClock(Clock):
    """Simulated time that moves only when the program sleeps or calls :meth:`advance`.

    A simulated campaign runs its loop in one thread: each ``sleep`` steps the world forward, so the run
    is deterministic for a given seed and as fast as the computation allows.
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = float(start_s)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def sleep(self, dt_s: float) -> None:
        self.advance(dt_s)

    def advance(self, dt_s: float) -> None:
        if dt_s < 0:
            raise ValueError(f"cannot advance time by a negative step ({dt_s} s)")
        with self._lock:
            self._t += dt_s

    @property
    def is_simulated(self) -> bool:
        return True
