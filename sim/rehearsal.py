"""Rehearsal: a rig file's real drivers talking to protocol servers that move the digital twin.

A device entry with ``twin: true`` keeps its real driver; the rig builder creates the twin device of that
kind and hands both to :func:`connect`, which starts the server that speaks the device's own wire
protocol (ProScan and NE-1000 and PI GCS over pseudo-terminals, the uMp's SMCP v1 over loopback UDP) and
opens the driver on it. The camera is the Basler driver on pylon's camera emulation, fed the twin's
rendered frames (:mod:`sim.twin_fed_basler`). Everything between the controller and the twin is the code a
rig runs: framing, reader threads, timeouts, libum, pylon's grab path.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from drivers.context import DeviceContext
from drivers.errors import ConfigError

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
    whose emulation lives inside the driver's own pylon instance).
    """
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
    update = {"address": server.address[0]} if driver == "sensapex" else {"port": server.port}
    try:
        return driver_cls(kind, settings.model_copy(update=update), context), server
    except Exception:
        server.close()
        raise
