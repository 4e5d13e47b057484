"""The operator window on the simulated rig, offscreen (pytest-qt)."""

import time
from pathlib import Path

import pytest
import yaml
from PyQt6.QtCore import QPointF, Qt

ROOT = Path(__file__).resolve().parents[2]


def gui_rig(tmp_path, **manipulator) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data["manipulator"].update(manipulator)
    # oracle segmentation and depth: these tests are about the GUI, not the models
    data["control"] = {"trials": {"xy_source": "oracle", "roi_px": [704, 456, 512, 288], "n_sperm": 6,
                                  "field_half_size_um": [40, 25]},
                       "calibration": {"store": str(tmp_path / "calibration.json")}}
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(data))
    return rig


def open_window(qtbot, rig: Path, tmp_path: Path):
    from app.gui.main_window import MainWindow
    from app.gui.session import LiveSession

    session = LiveSession(rig, seed=4)
    w = MainWindow(session, db=tmp_path / "trials.db", record_dir=tmp_path / "recordings")
    qtbot.addWidget(w)
    w.show()
    session.start()
    return w


@pytest.fixture
def window(qtbot, tmp_path):
    w = open_window(qtbot, gui_rig(tmp_path), tmp_path)
    yield w
    w.close()


def click_image(qtbot, window, x_px: float, y_px: float, shift: bool = False) -> None:
    """A real mouse click on the video widget at image pixel (x, y)."""
    scene = window.image.mapToScene(QPointF(x_px, y_px))
    at = window.video.mapFromScene(scene)
    modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    qtbot.mouseClick(window.video.viewport(), Qt.MouseButton.LeftButton, modifier, at)


def test_window_opens_and_shows_frames(window, qtbot):
    qtbot.waitUntil(lambda: window.frames_shown >= 3, timeout=30000)
    assert window.image.image is not None and window.image.image.shape == (288, 512)


def test_click_selects_a_sperm(window, qtbot):
    qtbot.waitUntil(lambda: window.session.latest_estimate is not None and bool(window.session.latest_estimate.tracks),
                    timeout=30000)
    track = window.session.latest_estimate.tracks[0]
    click_image(qtbot, window, *track.position_px)
    assert window.session.pipeline.override_id == track.id


def test_stop_halts_a_move_in_flight(window, qtbot):
    from drivers.stop import ESTOP

    m = window.session.rig.manipulator
    m.move_by_um([0, 0, 30.0], speed_um_s=10.0)
    time.sleep(0.3)
    assert m.is_moving()
    qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    assert ESTOP.triggered
    z = m.position_um()[2]
    time.sleep(0.3)
    assert not m.is_moving() and m.position_um()[2] == pytest.approx(z, abs=0.06)
    qtbot.mouseClick(window.reset_button, Qt.MouseButton.LeftButton)
    assert not ESTOP.triggered


@pytest.mark.slow
def test_trial_from_start_button_appears_in_table(window, qtbot, tmp_path):
    qtbot.waitUntil(lambda: window.frames_shown >= 2, timeout=30000)
    qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.trial_table.rowCount() == 1, timeout=240000)
    assert window.trial_table.item(0, 1).text() in ("success", "failed")
    assert "success" in window.rate_label.text()
    window.export_trials(tmp_path / "t.csv")
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 2


def test_video_keeps_the_camera_rate_while_the_control_loop_is_slow(window, qtbot):
    """The display gets every camera image; the control loop takes the newest and skips the rest."""
    session = window.session
    process = session.pipeline.process

    def slow(frame):
        time.sleep(0.2)
        return process(frame)

    session.pipeline.process = slow
    qtbot.waitUntil(lambda: session.steps >= 2, timeout=30000)
    images, steps, t0 = [0], session.steps, time.perf_counter()
    session.frame_ready.connect(lambda image, est: images.__setitem__(0, images[0] + 1))
    qtbot.wait(2000)
    steps = session.steps - steps
    elapsed = time.perf_counter() - t0
    assert steps <= elapsed / 0.2 + 1
    assert images[0] >= 3 * steps
    assert window.frames_shown > steps


def test_trails_add_one_point_per_estimate_and_stay_on_the_path_while_the_stage_moves():
    import numpy as np

    from app.gui.overlay import Trails, build_overlay
    from perception.runtime.estimate import Estimate, TrackState

    px_per_um = np.array([[2.0, 0.0], [0.0, -2.0]])  # 0.5 um pixels, image y against stage y

    def estimate(frame_id: int, x_um: float, stage_x_um: float) -> Estimate:
        px = (2.0 * (x_um - stage_x_um) + 100.0, 50.0)
        track = TrackState(7, (x_um, 10.0), (0.0, 0.0), frame_id, 0, 1.0, None, None, None, position_px=px)
        return Estimate(frame_id, 0.0, 0.0, {}, [], [track], None, None, None, None, None, None, None,
                        px_per_um=px_per_um)

    trails = Trails()
    # the cell swims +1 um per frame; each estimate is drawn several times
    for frame_id, x_um in [(1, 0.0), (1, 0.0), (1, 0.0), (2, 1.0), (2, 1.0), (3, 2.0)]:
        ov = build_overlay(estimate(frame_id, x_um, 0.0), 0.0, 0.25, trails)
    assert len(ov.trails) == 1 and ov.trails[0][:, 0].tolist() == [100.0, 102.0, 104.0]
    # the stage moves 20 um while the cell swims on: the trail moves with the image of the sample
    ov = build_overlay(estimate(4, 3.0, 20.0), 0.0, 0.25, trails)
    assert ov.trails[0][:, 0].tolist() == [60.0, 62.0, 64.0, 66.0]
    assert ov.trails[0][:, 1].tolist() == [50.0] * 4


def test_display_throttle_caps_the_average_rate_but_not_an_early_image_after_a_late_one():
    from app.gui.main_window import Bridge

    now = [0.0]
    bridge = Bridge(max_fps=40.0, clock=lambda: now[0])
    sent = []
    bridge.frame.connect(lambda frame, est: sent.append(frame))

    def offer(t: float) -> None:
        now[0] = t
        bridge.offer_frame(t, None)
        bridge.pending = False  # drawn at once

    # a 32/s camera with arrival jitter (20 ms after 42 ms): every image is shown
    t = 0.0
    for gap in [0.042, 0.020] * 20:
        t += gap
        offer(t)
    assert len(sent) == 40
    # a camera at 200/s: about 40 a second are shown
    sent.clear()
    for i in range(1, 401):
        offer(t + i * 0.005)
    assert 79 <= len(sent) <= 82
    # nothing is sent while the window is still drawing the last image
    sent.clear()
    now[0] += 1.0
    bridge.offer_frame("a", None)
    now[0] += 1.0
    bridge.offer_frame("b", None)
    assert sent == ["a"]
