"""Rehearsal: a rig file's real drivers talking to protocol servers that move the digital twin.

A device entry with ``twin: true`` keeps its real driver; the rig builder creates the twin device of that
kind and hands both to :func:`connect`, which starts the server that speaks the device's own wire
protocol (ProScan and NE-1000 and PI GCS over pseudo-terminals, the uMp's SMCP v1 over loopback UDP) and
opens the driver on it. The camera is the Basler driver on pylon's camera emulation, fed the twin's
rendered frames (:mod:`sim.twin_fed_basler`). Everything between the controller and the twin is the code a
rig runs: framing, reader threads, timeouts, libum, pylon's grab path.

The twin's devices stand for hardware: they answer to an emergency stop of their own, so the program's
stop reaches them only through the drivers and their links, as at a rig. :func:`inject` makes a rehearsed
device fail (:mod:`sim.protocols.faults`), and :class:`TwinProbe` reads from the twin when the pump and
the motion really stopped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from drivers.context import DeviceContext
from drivers.errors import ConfigError
from drivers.stop import EmergencyStop
from sim.protocols.faults import FAULTS, check_fault

#: pylon's emulated camera (``PYLON_CAMEMU``) reports this serial number
EMULATED_SERIAL = "0815-0000"
#: connection settings each server supplies to its driver, as placeholders for validating a rig file
CONNECTION: dict[str, dict[str, Any]] = {
    "prior-proscan": {"port": "twin"},
    "pi-gcs": {"port": "twin"},
    "newera": {"port": "twin"},
    "sensapex": {"address": "127.0.0.1"},
    "basler": {"serial": EMULATED_SERIAL},
}
#: devices a fault can be injected into
FAULT_DEVICES = ("camera", "stage", "focus", "manipulator", "pump")

__all__ = ["FAULTS", "FAULT_DEVICES", "connect", "connection_placeholder", "fault_target", "inject", "TwinProbe"]


def connection_placeholder(kind: str, driver: str) -> dict[str, Any]:
    """The settings a twin link fills in for ``driver``; a ConfigError if no server speaks its protocol."""
    if driver not in CONNECTION:
        raise ConfigError(f"{kind}.twin: no protocol server for driver {driver!r} "
                          f"(rehearsal covers: {', '.join(sorted(CONNECTION))})")
    return dict(CONNECTION[driver])


def connect(kind: str, driver: str, driver_cls: type, settings: BaseModel, twin: Any,
            context: DeviceContext) -> tuple[Any, Any]:
    """Start the protocol server for ``driver`` on ``twin`` and open the real driver on it.

    Returns ``(device, server)``; the caller closes the device before the server (``None`` for the camera,
    whose emulation lives inside the driver's own pylon instance). The server's ``kind`` names the device.
    """
    twin.use_estop(EmergencyStop())  # hardware: stopped through its driver, not by the program's switch
    if driver == "basler":
        from sim.twin_fed_basler import TwinFedBasler

        return TwinFedBasler(kind, settings, context, twin), None  # serial: the emulated camera's
    from sim.protocols.newera import NewEraServer
    from sim.protocols.pi_gcs import GcsServer
    from sim.protocols.proscan import ProScanServer
    from sim.protocols.smcp import SmcpServer

    servers = {"prior-proscan": ProScanServer, "pi-gcs": GcsServer, "newera": NewEraServer, "sensapex": SmcpServer}
    if driver == "newera" and settings.framing == "safe":
        server = NewEraServer(twin, safe_timeout_s=settings.safe_timeout_s)  # a pump set to safe mode
    else:
        server = servers[driver](twin)
    server.kind = kind
    update = {"address": server.address[0]} if driver == "sensapex" else {"port": server.port}
    try:
        return driver_cls(kind, settings.model_copy(update=update), context), server
    except Exception:
        server.close()
        raise


def fault_target(rig: Any, device: str) -> Any:
    """What takes faults for ``device`` of ``rig``: its protocol server (the twin-fed camera for the
    camera). A ValueError names a device that is unknown or not rehearsed."""
    if device not in FAULT_DEVICES:
        raise ValueError(f"unknown device {device!r} (known: {', '.join(FAULT_DEVICES)})")
    if device == "camera":
        target = rig.camera if hasattr(rig.camera, "inject") else None
    else:
        target = next((s for s in rig.servers if getattr(s, "kind", None) == device), None)
    if target is None:
        raise ValueError(f"{device} is not rehearsed (give it `twin: true` in the rig file), so it cannot take faults")
    return target


def inject(rig: Any, device: str, fault: str) -> None:
    """Make the rehearsed ``device`` of ``rig`` fail with ``fault`` from now on."""
    check_fault(fault)
    fault_target(rig, device).inject(fault)


@dataclass
class ProbeReport:
    """What the twin did after a fault, in seconds after it (None: not while watched)."""

    pump_was_running: bool  # its motor running when the fault came
    pump_stopped_after_s: float | None  # its motor stopped from then on
    stage_stopped_after_s: float | None  # the stage still from then on
    manipulator_stopped_after_s: float | None  # the manipulator still from then on (after any retraction)
    watched_s: float


class TwinProbe:
    """Watches the twin's pump, stage and manipulator (ground truth, every ``period_s`` in wall time)
    from the moment of a fault: when the flow stopped, when each device stopped for good."""

    def __init__(self, rig: Any, period_s: float = 0.005) -> None:
        self._twins = {t.kind: t for t in rig.twins}
        self._period_s = period_s
        self._t0 = time.monotonic()
        self._pump_was_running = self._pump_running()
        self._stopped: dict[str, float | None] = {}
        self._observe(0.0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="twin-probe", daemon=True)
        self._thread.start()

    def _pump_running(self) -> bool:
        """The pump's motor is commanded to run (the flow then follows within the syringe's lag)."""
        pump = self._twins.get("pump")
        return pump is not None and pump.rate_nl_s() != 0

    def _observe(self, t: float) -> None:
        active = {"pump": self._pump_running()}
        for kind in ("stage", "manipulator"):
            active[kind] = kind in self._twins and self._twins[kind].is_moving()
        for kind, busy in active.items():
            if busy:
                self._stopped[kind] = None
            elif self._stopped.get(kind) is None:
                self._stopped[kind] = t

    def _watch(self) -> None:
        while not self._done.wait(self._period_s):
            self._observe(time.monotonic() - self._t0)

    def report(self, watch_s: float) -> ProbeReport:
        """Watch until ``watch_s`` after the fault, then say when each device came to rest for the last
        time (None: still moving). The whole window is watched: a retraction follows the stop once the
        controller has its confirmations, and stillness before it says nothing about what comes next."""
        time.sleep(max(0.0, self._t0 + watch_s - time.monotonic()))
        self._done.set()
        self._thread.join(1.0)
        return ProbeReport(self._pump_was_running, self._stopped["pump"], self._stopped["stage"],
                           self._stopped["manipulator"], time.monotonic() - self._t0)
