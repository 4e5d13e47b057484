"""What a driver receives besides its own settings when a rig is assembled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.clock import Clock
from drivers.objective import Objective


@dataclass
class DeviceContext:
    clock: Clock
    objective: Objective
    world: Any = None  # the digital twin, for simulated devices only
