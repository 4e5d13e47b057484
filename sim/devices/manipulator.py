"""Simulated 3-axis micromanipulator carrying the pipette (speed limit, quantisation, command latency).

The pipette tip's position in the microscope (lab) frame is ``mount_origin_lab_um + R(axes_yaw_deg) @
(position - home_um)``: the mounting is the hidden truth that calibration must recover.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.context import DeviceContext
from drivers.interfaces import AxisLimits, Manipulator, MoveHandle
from drivers.units import Seconds, Um, UmPerS, UmPerS2, UmRange, check_inside
from sim.devices.axes import ProfiledAxes


class SimManipulator(Manipulator):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        limits_um: tuple[UmRange, UmRange, UmRange] = ((0, 20000), (0, 20000), (0, 20000))
        max_speed_um_s: UmPerS = Field(1000.0, gt=0)
        accel_um_s2: UmPerS2 = Field(20000.0, gt=0)
        latency_s: Seconds = Field(0.005, ge=0)
        step_um: Um = Field(0.05, ge=0, description="position quantisation")
        home_um: tuple[Um, Um, Um] = (10000.0, 10000.0, 10000.0)
        mount_origin_lab_um: tuple[Um, Um, Um] = (70.0, 0.0, 12.0)
        axes_yaw_deg: float = Field(0.0, ge=-180, le=180)

        @model_validator(mode="after")
        def _home_inside(self):
            for axis, value, limits in zip("xyz", self.home_um, self.limits_um):
                check_inside(f"home_um {axis}", value, limits, f"limits_um {axis}")
            return self

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock, tuple(AxisLimits(*lim) for lim in settings.limits_um),  # type: ignore[arg-type]
                         settings.max_speed_um_s)
        self.settings = settings
        self.axes = ProfiledAxes(self, context.clock, np.array(settings.home_um), settings.accel_um_s2,
                                 settings.latency_s, 0.0, settings.step_um, 0.0, seed=context.world.seed + 17)
        yaw = np.deg2rad(settings.axes_yaw_deg)
        self._rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1.0]])
        context.world.attach(self)

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> SimManipulator:
        return cls(name, settings, context)

    def mounting(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, b) with tip_lab = A @ position + b: the exact transform a calibration should find."""
        return self._rot.copy(), np.array(self.settings.mount_origin_lab_um) - self._rot @ np.array(self.settings.home_um)

    def tip_lab_um(self) -> np.ndarray:
        rel = self.axes.true_position() - np.array(self.settings.home_um)
        return np.array(self.settings.mount_origin_lab_um) + self._rot @ rel

    def position_um(self) -> np.ndarray:
        return self.axes.read_position()

    def is_moving(self) -> bool:
        return self.axes.is_moving()

    def _start_move(self, target_um: np.ndarray, speed_um_s: float) -> MoveHandle:
        return self.axes.start(target_um, speed_um_s, "move_to_um")

    def stop(self) -> None:
        self.axes.stop()
