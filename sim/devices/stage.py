"""Simulated motorised XY stage (speed and acceleration limits, settling, encoder noise)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.context import DeviceContext
from drivers.interfaces import AxisLimits, MoveHandle, XYStage
from drivers.units import Seconds, Um, UmPerS, UmPerS2, UmRange, check_inside
from sim.devices.axes import ProfiledAxes


class SimXYStage(XYStage):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        x_limits_um: UmRange = (-50000.0, 50000.0)
        y_limits_um: UmRange = (-35000.0, 35000.0)
        max_speed_um_s: UmPerS = Field(3000.0, gt=0)
        accel_um_s2: UmPerS2 = Field(20000.0, gt=0)
        settle_s: Seconds = Field(0.02, ge=0)
        latency_s: Seconds = Field(0.004, ge=0)
        position_noise_um: Um = Field(0.02, ge=0)
        start_um: tuple[Um, Um] = (0.0, 0.0)

        @model_validator(mode="after")
        def _start_inside(self):
            check_inside("start_um x", self.start_um[0], self.x_limits_um, "x_limits_um")
            check_inside("start_um y", self.start_um[1], self.y_limits_um, "y_limits_um")
            return self

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock, AxisLimits(*settings.x_limits_um), AxisLimits(*settings.y_limits_um),
                         settings.max_speed_um_s)
        self.axes = ProfiledAxes(self, context.clock, np.array(settings.start_um), settings.accel_um_s2,
                                 settings.latency_s, settings.settle_s, 0.0, settings.position_noise_um,
                                 seed=context.world.seed + 11)
        context.world.attach(self)

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> SimXYStage:
        return cls(name, settings, context)

    def true_position_um(self) -> tuple[float, float]:
        x, y = self.axes.true_position()
        return float(x), float(y)

    def position_um(self) -> tuple[float, float]:
        x, y = self.axes.read_position()
        return float(x), float(y)

    def is_moving(self) -> bool:
        return self.axes.is_moving()

    def _start_move(self, x_um: float, y_um: float, speed_um_s: float) -> MoveHandle:
        return self.axes.start(np.array([x_um, y_um]), speed_um_s, "move_to_um")

    def stop(self) -> None:
        self.axes.stop()
