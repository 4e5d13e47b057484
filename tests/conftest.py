"""Shared fixtures. Qt runs offscreen; the emergency stop is re-armed between tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MICROMANIP_SHARED", ROOT.parent / "shared"))  # override: tests on a checkout elsewhere


@pytest.fixture(autouse=True)
def _rearm_estop():
    from drivers.stop import ESTOP

    ESTOP.reset() if ESTOP.triggered else None
    yield
    if ESTOP.triggered:
        ESTOP.reset()


@pytest.fixture
def sim_rig():
    """The default simulated rig (lockstep clock), closed after the test."""
    from app.config import load_rig_config
    from app.rig import build_rig

    rig = build_rig(load_rig_config(ROOT / "configs" / "sim.yaml"))
    yield rig
    rig.close()


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (fresh clone): test needs the shared data")
    return SHARED
