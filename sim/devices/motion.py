"""Trapezoidal point-to-point motion in any number of axes, evaluated at any time."""

from __future__ import annotations

import numpy as np


class LinearProfile:
    """Straight-line move with acceleration ``accel`` and cruise ``speed``, starting after ``latency_s``."""

    def __init__(self, start: np.ndarray, end: np.ndarray, speed: float, accel: float, t0: float,
                 latency_s: float = 0.0) -> None:
        self.start = np.asarray(start, dtype=float)
        self.end = np.asarray(end, dtype=float)
        self.t0 = t0 + latency_s
        dist = float(np.linalg.norm(self.end - self.start))
        self.dist = dist
        self.dir = (self.end - self.start) / dist if dist > 0 else np.zeros_like(self.start)
        if dist * accel < speed**2:  # never reaches cruise speed: triangular profile
            self.t_acc = np.sqrt(dist / accel)
            self.v_peak = accel * self.t_acc
            self.t_cruise = 0.0
        else:
            self.t_acc = speed / accel
            self.v_peak = speed
            self.t_cruise = (dist - speed * self.t_acc) / speed
        self.accel = accel
        self.duration = 2 * self.t_acc + self.t_cruise
        self.stopped_at: float | None = None

    @property
    def end_time(self) -> float:
        return self.stopped_at if self.stopped_at is not None else self.t0 + self.duration

    def _travel(self, t: float) -> float:
        tau = t - self.t0
        if tau <= 0:
            return 0.0
        if tau < self.t_acc:
            return 0.5 * self.accel * tau**2
        d_acc = 0.5 * self.accel * self.t_acc**2
        if tau < self.t_acc + self.t_cruise:
            return d_acc + self.v_peak * (tau - self.t_acc)
        if tau < self.duration:
            rem = self.duration - tau
            return self.dist - 0.5 * self.accel * rem**2
        return self.dist

    def position(self, t: float) -> np.ndarray:
        if self.stopped_at is not None:
            t = min(t, self.stopped_at)
        return self.start + self.dir * self._travel(t)

    def velocity(self, t: float) -> np.ndarray:
        dt = 1e-4
        return (self.position(t + dt) - self.position(t)) / dt

    def stop(self, t: float) -> None:
        """Halt now (the sim's drives stop within one control cycle)."""
        if self.stopped_at is None and t < self.t0 + self.duration:
            self.stopped_at = max(t, self.t0)

    @property
    def interrupted(self) -> bool:
        return self.stopped_at is not None
