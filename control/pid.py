"""PID per axis on measured dt (simple-pid), outputs clamped to the axis speed limit (which also bounds
the integral: simple-pid's anti-windup)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from simple_pid import PID


class PIDGains(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kp: float = Field(6.0, ge=0, le=1000, description="1/s: velocity per um of error")
    ki: float = Field(0.5, ge=0, le=1000, description="1/s^2")
    kd: float = Field(0.05, ge=0, le=100, description="dimensionless: velocity per um/s of error change")


class AxisPID:
    """Velocity command (um/s) from a position error (um), with dt taken from the caller's clock."""

    def __init__(self, gains: PIDGains, limit_um_s: float) -> None:
        self.pid = PID(gains.kp, gains.ki, gains.kd, setpoint=0.0, sample_time=None,
                       output_limits=(-limit_um_s, limit_um_s))
        self._t: float | None = None

    def __call__(self, error_um: float, t_s: float) -> float:
        dt = None if self._t is None else max(t_s - self._t, 1e-6)
        self._t = t_s
        # simple-pid computes setpoint - input: feed -error so that a positive error gives a positive output
        return float(self.pid(-error_um, dt=dt) if dt is not None else self.pid(-error_um, dt=1e-3))

    def reset(self) -> None:
        self.pid.reset()
        self._t = None
