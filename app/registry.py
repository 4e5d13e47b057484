"""Which class implements each ``driver:`` name of a rig file.

Classes are named as import paths and imported only when a rig uses them, so a machine without a
vendor library can still load a rig that does not need it. Each driver class has a pydantic
``Settings`` model (extra keys forbidden) and a ``from_settings(name, settings, context)`` constructor.
"""

from __future__ import annotations

import importlib
from typing import Any

from drivers.errors import ConfigError

DRIVERS: dict[str, dict[str, str]] = {
    "camera": {
        "sim": "sim.devices.camera:SimCamera",
        "basler": "drivers.basler:BaslerCamera",
        "micromanager": "drivers.micromanager:MMCamera",
        "replay": "drivers.replay:ReplayCamera",
    },
    "stage": {
        "sim": "sim.devices.stage:SimXYStage",
        "prior-proscan": "drivers.prior:ProScanStage",
        "micromanager": "drivers.micromanager:MMXYStage",
        "none": "drivers.absent:AbsentStage",
    },
    "focus": {
        "sim": "sim.devices.focus:SimFocusDrive",
        "pi-gcs": "drivers.pi_piezo:PiezoFocus",
        "micromanager": "drivers.micromanager:MMFocus",
        "none": "drivers.absent:AbsentFocus",
    },
    "manipulator": {
        "sim": "sim.devices.manipulator:SimManipulator",
        "sensapex": "drivers.sensapex_ump:SensapexManipulator",
        "none": "drivers.absent:AbsentManipulator",
    },
    "pump": {
        "sim": "sim.devices.pump:SimPump",
        "newera": "drivers.newera:NewEraPump",
        "none": "drivers.absent:AbsentPump",
    },
}


def driver_class(kind: str, driver: str) -> Any:
    """The class for ``driver`` of device ``kind``; a ConfigError names the field if unknown."""
    known = DRIVERS.get(kind, {})
    if driver not in known:
        raise ConfigError(f"{kind}.driver: unknown driver {driver!r} (known: {', '.join(sorted(known))})")
    module_name, class_name = known[driver].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{kind}.driver: {driver!r} needs a library that is not installed ({exc.name})") from exc
    return getattr(module, class_name)
