"""Simulated focus drive: moves the focal plane (um above the dish floor)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.context import DeviceContext
from drivers.interfaces import AxisLimits, FocusDrive, MoveHandle
from drivers.units import Seconds, Um, UmPerS, UmPerS2, UmRange, check_inside
from sim.devices.axes import ProfiledAxes


class SimFocusDrive(FocusDrive):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        limits_um: UmRange = (-20.0, 200.0)
        max_speed_um_s: UmPerS = Field(400.0, gt=0)
        accel_um_s2: UmPerS2 = Field(10000.0, gt=0)
        settle_s: Seconds = Field(0.02, ge=0, description="ringing after a move: a piezo objective scanner"
                                  " carrying an objective, for sub-um steps")
        latency_s: Seconds = Field(0.002, ge=0)
        step_um: Um = Field(0.025, ge=0, description="drive resolution")
        start_um: Um = 2.5
        drift_um_s: UmPerS = Field(0.0, ge=-10, le=10, description="the focal plane creeps at this rate (thermal"
                                  " drift of stand and dish) while the drive's reading stays put")

        @model_validator(mode="after")
        def _start_inside(self):
            check_inside("start_um", self.start_um, self.limits_um, "limits_um")
            return self

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock, AxisLimits(*settings.limits_um), settings.max_speed_um_s)
        self.axes = ProfiledAxes(self, context.clock, np.array([settings.start_um]), settings.accel_um_s2,
                                 settings.latency_s, settings.settle_s, settings.step_um, 0.0,
                                 seed=context.world.seed + 13)
        self.drift_um_s = settings.drift_um_s
        self._t0_s = context.clock.now()
        context.world.attach(self)

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> SimFocusDrive:
        return cls(name, settings, context)

    def true_z_um(self) -> float:
        """Where the focal plane is: the drive's position plus the drift so far (the image shows it, the
        drive's reading does not)."""
        drift = self.drift_um_s * (self.clock.now() - self._t0_s) if self.drift_um_s else 0.0
        return float(self.axes.true_position()[0]) + drift

    def z_um(self) -> float:
        return float(self.axes.read_position()[0])

    def is_moving(self) -> bool:
        return self.axes.is_moving()

    def _start_move(self, z_um: float, speed_um_s: float) -> MoveHandle:
        return self.axes.start(np.array([z_um]), speed_um_s, "move_to_um")

    def stop(self) -> None:
        self.axes.stop()
