"""Shared fixtures. Qt runs offscreen; the emergency stop is re-armed between tests."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# pytest-qt drives the Qt binding the application uses (qtpy's choice: QT_API, else the one installed)
import qtpy  # noqa: E402

os.environ.setdefault("PYTEST_QT_API", qtpy.API)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MICROMANIP_SHARED", ROOT.parent / "shared"))  # override: tests on a checkout elsewhere


@pytest.fixture(autouse=True, scope="session")
def _logs_in_a_temporary_folder(tmp_path_factory):
    """No test, nor a command a test runs, writes into the user's log folder (~/.local/state/micromanip)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _root_logger_as_it_was():
    """Handlers that `configure_logging` installs on the root logger do not outlive the test."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_micromanip", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture(autouse=True, scope="session")
def _own_data_dir(tmp_path_factory):
    """Calibration stores and other per-user data go to a temporary folder, never the user's own."""
    os.environ["MICROMANIP_DATA_DIR"] = str(tmp_path_factory.mktemp("user-data"))


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
