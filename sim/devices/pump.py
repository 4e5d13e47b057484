"""Simulated pump: commanded rate with start/stop lag, and the dispensed volume."""

from __future__ import annotations

import bisect
import threading

from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.interfaces import Pump
from drivers.units import NlPerS, Seconds


class SimPump(Pump):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        max_rate_nl_s: NlPerS = Field(50.0, gt=0)
        start_lag_s: Seconds = Field(0.05, ge=0)
        stop_lag_s: Seconds = Field(0.03, ge=0)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock, settings.max_rate_nl_s)
        self.settings = settings
        self._lock = threading.Lock()
        # (time the command takes effect, rate), sorted by time; entries already superseded are folded
        # into _volume_nl so the list stays short however long the pump runs
        self._changes: list[tuple[float, float]] = [(context.clock.now(), 0.0)]
        self._volume_nl = 0.0
        self._commanded = 0.0
        context.world.attach(self)

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> SimPump:
        return cls(name, settings, context)

    def _command(self, rate: float) -> None:
        with self._lock:
            now = self.clock.now()
            lag = self.settings.start_lag_s if rate != 0 else self.settings.stop_lag_s
            bisect.insort(self._changes, (now + lag, rate))
            while len(self._changes) > 1 and self._changes[1][0] <= now:
                (t0, r), (t1, _) = self._changes[0], self._changes[1]
                self._volume_nl += r * (t1 - t0)
                self._changes.pop(0)
            self._commanded = rate

    def _start_flow(self, signed_rate_nl_s: float) -> None:
        self._command(signed_rate_nl_s)

    def stop(self) -> None:
        self._command(0.0)

    def rate_nl_s(self) -> float:
        return self._commanded

    def effective_rate_nl_s(self) -> float:
        """Rate actually delivered now (commands act after their lag)."""
        now = self.clock.now()
        with self._lock:
            rate = 0.0
            for t, r in self._changes:
                if t <= now:
                    rate = r
            return rate

    def volume_nl(self) -> float:
        now = self.clock.now()
        with self._lock:
            changes = list(self._changes)
            vol = self._volume_nl
        for (t0, r), (t1, _) in zip(changes, changes[1:] + [(now, 0.0)]):
            vol += r * max(0.0, min(t1, now) - min(t0, now))
        return vol
