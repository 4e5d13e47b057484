"""Devices a rig does not have (``driver: none``): a rig with only a camera runs perception, and any
motion asked of a missing device is refused with a DeviceError naming it, before anything happens.

A rig file may leave out ``stage``, ``focus``, ``manipulator`` and ``pump``; they default to these. The
stage and focus report a fixed position (0), so frames stay in one place in stage coordinates.
"""

from __future__ import annotations

from typing import NoReturn, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from drivers.context import DeviceContext
from drivers.errors import DeviceError
from drivers.interfaces import AxisLimits, FocusDrive, Manipulator, MoveHandle, Pump, XYStage

_ANY = AxisLimits(-1e9, 1e9)


class _Absent:
    """Shared by every absent device: no settings, nothing to stop, every command refused."""

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")

    name: str
    kind: str

    @classmethod
    def from_settings(cls, name: str, settings: BaseModel, context: DeviceContext):  # type: ignore[no-untyped-def]
        return cls(name, context)

    def _refuse(self, action: str) -> NoReturn:
        raise DeviceError(self.name, action, f"this rig has no {self.kind} (driver: none; perception only)")

    def stop(self) -> None:
        pass

    def is_moving(self) -> bool:
        return False


class AbsentStage(_Absent, XYStage):
    def __init__(self, name: str, context: DeviceContext) -> None:
        XYStage.__init__(self, name, context.clock, _ANY, _ANY, 1.0)

    def position_um(self) -> tuple[float, float]:
        return 0.0, 0.0

    def move_to_um(self, x_um: float, y_um: float, speed_um_s: float | None = None) -> MoveHandle:
        self._refuse("move_to_um")

    def _start_move(self, x_um: float, y_um: float, speed_um_s: float) -> MoveHandle:
        self._refuse("move_to_um")


class AbsentFocus(_Absent, FocusDrive):
    def __init__(self, name: str, context: DeviceContext) -> None:
        FocusDrive.__init__(self, name, context.clock, _ANY, 1.0)

    def z_um(self) -> float:
        return 0.0

    def move_to_um(self, z_um: float, speed_um_s: float | None = None) -> MoveHandle:
        self._refuse("move_to_um")

    def _start_move(self, z_um: float, speed_um_s: float) -> MoveHandle:
        self._refuse("move_to_um")


class AbsentManipulator(_Absent, Manipulator):
    def __init__(self, name: str, context: DeviceContext) -> None:
        Manipulator.__init__(self, name, context.clock, (_ANY, _ANY, _ANY), 1.0)

    def position_um(self) -> np.ndarray:
        return np.zeros(3)

    def move_to_um(self, target_um: Sequence[float], speed_um_s: float | None = None) -> MoveHandle:
        self._refuse("move_to_um")

    def _start_move(self, target_um: np.ndarray, speed_um_s: float) -> MoveHandle:
        self._refuse("move_to_um")


class AbsentPump(_Absent, Pump):
    def __init__(self, name: str, context: DeviceContext) -> None:
        Pump.__init__(self, name, context.clock, 1.0)

    def _start(self, action: str, rate_nl_s: float, sign: int) -> None:
        self._refuse(action)

    def _start_flow(self, signed_rate_nl_s: float) -> None:
        self._refuse("aspirate")

    def rate_nl_s(self) -> float:
        return 0.0

    def volume_nl(self) -> float:
        return 0.0
