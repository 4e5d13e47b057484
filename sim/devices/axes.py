"""Shared behaviour of simulated motion devices: profiles, stop, readback noise, move handles."""

from __future__ import annotations

import threading

import numpy as np

from drivers.clock import Clock
from drivers.interfaces import Device, MoveHandle
from sim.devices.motion import LinearProfile


class ProfiledAxes:
    """Position of N axes following trapezoidal moves on a clock."""

    def __init__(self, device: Device, clock: Clock, start: np.ndarray, accel_um_s2: float, latency_s: float,
                 settle_s: float, quantum_um: float, noise_um: float, seed: int) -> None:
        self.device = device
        self.clock = clock
        self.accel = accel_um_s2
        self.latency_s = latency_s
        self.settle_s = settle_s
        self.quantum_um = quantum_um
        self.noise_um = noise_um
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        start = np.asarray(start, dtype=float)
        self.profile = LinearProfile(start, start, 1.0, accel_um_s2, clock.now())

    def true_position(self) -> np.ndarray:
        with self._lock:
            return self.profile.position(self.clock.now())

    def read_position(self) -> np.ndarray:
        """What the controller reads back: quantised, with encoder noise."""
        pos = self.true_position()
        if self.noise_um:
            pos = pos + self._rng.normal(0.0, self.noise_um, pos.shape)
        if self.quantum_um:
            pos = np.round(pos / self.quantum_um) * self.quantum_um
        return pos

    def is_moving(self) -> bool:
        with self._lock:
            return self.clock.now() < self.profile.end_time + (0.0 if self.profile.interrupted else self.settle_s)

    def start(self, target: np.ndarray, speed_um_s: float, action: str) -> MoveHandle:
        if self.quantum_um:
            target = np.round(np.asarray(target, dtype=float) / self.quantum_um) * self.quantum_um
        with self._lock:
            now = self.clock.now()
            current = self.profile.position(now)
            self.profile.stop(now)
            profile = LinearProfile(current, target, speed_um_s, self.accel, now, self.latency_s)
            self.profile = profile

        def error() -> str | None:
            return "stopped before reaching the target" if profile.interrupted else None

        return MoveHandle(self.device, action, lambda: not profile.interrupted and not self.is_moving()
                          and self.profile is profile, self.clock, error, fault=lambda: None)

    def stop(self) -> None:
        with self._lock:
            self.profile.stop(self.clock.now())
