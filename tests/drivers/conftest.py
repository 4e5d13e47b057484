"""Driver tests: each real driver talks to a protocol server that moves a digital-twin device."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT


@pytest.fixture
def twin():
    """The default simulated rig on a real clock (drivers wait in wall time); no cells to render."""
    from app.config import parse_rig_config
    from app.rig import build_rig

    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data.update(clock="real", scene={"n_sperm": 0, "n_debris": 0})
    rig = build_rig(parse_rig_config(data))
    rig.manipulator.guard = None  # it stands in for the hardware behind a protocol server: the application's
    yield rig                     # tip guard belongs on the driver under test, not on the device it drives
    rig.close()


@pytest.fixture
def context(twin):
    from drivers.context import DeviceContext

    return DeviceContext(clock=twin.clock, objective=twin.config.objective)


@pytest.fixture
def connect(context):
    """``connect(server, DriverClass, **settings)``: open a real driver on a protocol server's port; both
    are closed after the test (driver first, as a user would)."""
    opened = []

    def open_driver(server, driver_cls, **settings):
        opened.append(server)
        device = driver_cls(driver_cls.kind, driver_cls.Settings(port=server.port, **settings), context)
        opened.append(device)
        return device

    yield open_driver
    for thing in reversed(opened):
        thing.close()
