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
    yield rig
    rig.close()


@pytest.fixture
def context(twin):
    from drivers.context import DeviceContext

    return DeviceContext(clock=twin.clock, objective=twin.config.objective)
