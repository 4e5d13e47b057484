"""Stopping the live session: the four ways the frames stop with the pump running, signals, window close,
pause and the emergency stop (which never stop the video), no motion at start-up.

The rig is the simulated one with the stage (ProScan) and the pump (NE-1000, safe mode) rehearsed through
their real drivers over pseudo-terminals, so a pulled stage cable is a real hang-up of the port and every
stop reaches the pump through its link. Waits are generous (a loaded CI); the figures belong to
benchmarks/fault_injection.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pytestqt")

from control.states import State  # noqa: E402
from drivers.stop import ESTOP  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 30000


def rig_file(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data["clock"] = "real"
    data["stage"] = {"driver": "prior-proscan", "twin": {"max_speed_um_s": 3000}, "reply_timeout_s": 0.3}
    data["pump"] = {"driver": "newera", "twin": True, "max_rate_nl_s": 50, "reply_timeout_s": 0.3}
    data["control"] = {"trials": {"xy_source": "oracle", "roi_px": [704, 456, 512, 288], "n_sperm": 4,
                                  "field_half_size_um": [40, 25]},
                       "supervisor": {"camera_loss_s": 0.75, "perception_loss_s": 0.75}}
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def session(tmp_path):
    from app.gui.session import LiveSession

    s = LiveSession(rig_file(tmp_path), seed=4)
    s.start()
    yield s
    s.stop()


def twin(session, kind: str):
    return next(t for t in session.rig.twins if t.kind == kind)


def frozen_in_aspirating(session, qtbot) -> None:
    """A trial whose controller stands in Aspirating with the pump at 1.2 nL/s, as when the frames stop
    mid-aspiration (the controller is paused while it is put there, so no frame moves it on)."""
    qtbot.waitUntil(lambda: session.steps >= 3, timeout=WAIT_MS)
    session.paused = True
    session.start_trial()
    ctl = session.controller
    session.rig.pump.aspirate(ctl.cfg.params.aspirating.rate_nl_s)
    ctl.state, ctl._entered_s = State.ASPIRATING, session.rig.clock.now()
    assert twin(session, "pump").rate_nl_s() == pytest.approx(1.2)


def assert_faulted_with_pump_off(session, qtbot, device: str, words: str) -> None:
    pump = twin(session, "pump")
    qtbot.waitUntil(lambda: session.controller.state == State.FAULT, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: pump.rate_nl_s() == 0.0, timeout=WAIT_MS)
    ctl = session.controller
    assert ctl.failure_mode == f"fault:{device}" and words in ctl.fault_message
    assert session.supervisor.trip_reason[0] == device  # the fault was seen before the pump's deadline
    qtbot.waitUntil(lambda: bool(session.trials) and session.trials[-1].failure_mode == f"fault:{device}",
                    timeout=WAIT_MS)
    assert session.trials[-1].fault == ctl.fault_message


def test_a_dead_camera_ends_the_trial_with_the_pump_off(session, qtbot):
    frozen_in_aspirating(session, qtbot)
    session.rig.camera.stop_streaming()  # no image comes any more
    session.paused = False
    assert_faulted_with_pump_off(session, qtbot, "camera", "no image")


def test_a_pulled_stage_cable_ends_the_trial_with_the_pump_off(session, qtbot):
    frozen_in_aspirating(session, qtbot)
    next(s for s in session.rig.servers if s.kind == "stage").inject("disconnect")
    session.paused = False
    assert_faulted_with_pump_off(session, qtbot, "stage", "serial link lost")


def test_an_exception_in_perception_ends_the_trial_with_the_pump_off(session, qtbot):
    frozen_in_aspirating(session, qtbot)

    def broken(frame):
        raise RuntimeError("perception bug")

    session.pipeline.process = broken
    session.paused = False
    assert_faulted_with_pump_off(session, qtbot, "perception", "RuntimeError: perception bug")


def test_perception_slower_than_the_staleness_limit_ends_the_trial_with_the_pump_off(session, qtbot):
    frozen_in_aspirating(session, qtbot)
    process = session.pipeline.process

    def slow(frame):
        time.sleep(0.3)  # every estimate comes older than the 0.15 s the controller acts on
        return process(frame)

    session.pipeline.process = slow
    session.paused = False
    assert_faulted_with_pump_off(session, qtbot, "perception", "no estimate fresh enough")


def test_the_pump_never_runs_past_its_deadline_even_outside_a_trial(session, qtbot):
    session.supervisor.pump_deadline_s = 0.5
    session.rig.pump.aspirate(1.2)  # the operator's pump button
    qtbot.waitUntil(lambda: twin(session, "pump").rate_nl_s() == 0.0, timeout=WAIT_MS)


def test_nothing_moves_at_start_up(tmp_path, qtbot):
    from app.gui.session import LiveSession

    s = LiveSession(rig_file(tmp_path), seed=4)
    try:
        focus = twin(s, "focus") if any(t.kind == "focus" for t in s.rig.twins) else s.rig.focus
        start_z = focus.z_um()
        s.start()
        qtbot.waitUntil(lambda: s.steps >= 3, timeout=WAIT_MS)
        assert not s.rig.focus.is_moving() and s.rig.focus.z_um() == pytest.approx(start_z, abs=0.05)
        assert not twin(s, "stage").is_moving() and not s.rig.manipulator.is_moving()
    finally:
        s.stop()


# ----- the operator window -----------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path):
    from app.gui.main_window import MainWindow
    from app.gui.session import LiveSession

    session = LiveSession(rig_file(tmp_path), seed=4)
    w = MainWindow(session)
    qtbot.addWidget(w)
    w.show()
    session.start()
    yield w
    w.close()


def test_stop_and_pause_stop_the_pump_but_never_the_video(window, qtbot):
    from qtpy.QtCore import Qt

    session = window.session
    pump = twin(session, "pump")
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=WAIT_MS)
    session.rig.pump.aspirate(1.2)
    qtbot.mouseClick(window.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pump.rate_nl_s() == 0.0, timeout=WAIT_MS)
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= shown + 3, timeout=WAIT_MS)  # video runs on, paused
    qtbot.mouseClick(window.pause_button, Qt.MouseButton.LeftButton)
    session.rig.pump.aspirate(1.2)
    qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    assert ESTOP.triggered
    qtbot.waitUntil(lambda: pump.rate_nl_s() == 0.0, timeout=WAIT_MS)
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= shown + 3, timeout=WAIT_MS)  # and through the e-stop
    qtbot.mouseClick(window.reset_button, Qt.MouseButton.LeftButton)
    shown = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= shown + 3, timeout=WAIT_MS)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_pump_and_motion_and_closes_the_window(window, qtbot, signum):
    session = window.session
    pump, stage = twin(session, "pump"), twin(session, "stage")
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        window.stop_on_signals()
        qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=WAIT_MS)
        session.rig.pump.aspirate(1.2)
        x, y = session.rig.stage.position_um()
        session.rig.stage.move_to_um(x + 2000.0, y, 1000.0)
        os.kill(os.getpid(), signum)
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: pump.rate_nl_s() == 0.0 and not stage.is_moving(), timeout=WAIT_MS)
        assert stage.true_position_um()[0] < x + 1900.0  # stopped on its way, not at the end of the move
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_closing_the_window_stops_the_pump(window, qtbot):
    pump = twin(window.session, "pump")
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=WAIT_MS)
    window.session.rig.pump.aspirate(1.2)
    window.close()
    qtbot.waitUntil(lambda: pump.rate_nl_s() == 0.0, timeout=WAIT_MS)
