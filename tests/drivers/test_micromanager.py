"""The Micro-Manager bridge through pymmcore-plus, on Micro-Manager's demo adapters (mm-test-adapters)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")
pytest.importorskip("mm_test_adapters")

from drivers.errors import DeviceError, LimitError  # noqa: E402
from drivers.interfaces import Roi  # noqa: E402
from drivers.micromanager import MMCamera, MMFocus, MMXYStage  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

DEMO = ROOT / "configs" / "micromanager" / "demo.cfg"


@pytest.fixture
def bridge(context):
    opened = []

    def make(cls, **settings):
        device = cls(cls.kind, cls.Settings(config_file=DEMO, demo_adapters=True, **settings), context)
        opened.append(device)
        return device

    yield make
    for device in reversed(opened):
        device.close()


def test_camera_snaps_with_its_settings_and_roi(bridge):
    cam = bridge(MMCamera, exposure_ms=2.0)
    assert cam.exposure_ms == pytest.approx(2.0)
    cam.set_roi(Roi(10, 20, 128, 64))
    image = cam.snap()
    assert image.pixels.shape == (64, 128) and image.roi_offset_px == (10, 20)
    assert cam.bit_depth == 8
    cam.set_gain_db(2)
    assert cam.gain_db == pytest.approx(2)
    with pytest.raises(LimitError, match=r"Gain=50 outside \[-5, 8\]"):
        cam.set_gain_db(50)
    with pytest.raises(LimitError, match="does not fit"):
        cam.set_roi(Roi(500, 0, 128, 64))


def test_camera_streams_the_newest_image_and_stops_cleanly(bridge):
    cam = bridge(MMCamera, exposure_ms=1.0, frame_rate_hz=100)
    got = []
    enough = threading.Event()

    def consumer(image):
        got.append(image.frame_id)
        if len(got) >= 5:
            enough.set()

    cam.image_ready.connect(consumer)
    cam.start_streaming()
    assert enough.wait(5.0)
    with pytest.raises(DeviceError, match="camera: snap: the camera is streaming"):
        cam.snap()
    cam.stop_streaming()
    assert not cam._core.isSequenceRunning()  # stopped before anything else happens
    assert got == sorted(got)
    assert cam.snap().pixels.ndim == 2


def test_stage_and_focus_move_and_check_limits_first(bridge):
    stage = bridge(MMXYStage, x_limits_um=(-1000, 1000), y_limits_um=(-1000, 1000))
    focus = bridge(MMFocus, limits_um=(0, 50))
    stage.move_to_um(120.0, -40.0).wait(5.0)
    assert np.allclose(stage.position_um(), (120.0, -40.0), atol=0.01)
    focus.move_to_um(12.5).wait(5.0)
    assert focus.z_um() == pytest.approx(12.5)
    with pytest.raises(LimitError, match="x=2000.00 um outside limits"):
        stage.move_to_um(2000.0, 0.0)
    with pytest.raises(LimitError, match="z=80.00 um outside limits"):
        focus.move_to_um(80.0)
    assert np.allclose(stage.position_um(), (120.0, -40.0), atol=0.01)


def test_a_missing_configuration_or_device_label_is_named(context, tmp_path):
    with pytest.raises(DeviceError, match="Micro-Manager configuration .*nope.cfg not found"):
        MMCamera("camera", MMCamera.Settings(config_file=tmp_path / "nope.cfg"), context)
    with pytest.raises(DeviceError, match=r"no device 'Cam2' in demo.cfg \(loaded: "):
        MMCamera("camera", MMCamera.Settings(config_file=DEMO, device="Cam2", demo_adapters=True), context)


def test_the_users_micro_manager_is_searched_not_the_demo_adapters(context, tmp_path, monkeypatch):
    """With mm-test-adapters installed, a rig file that names no adapters still gets the user's own
    Micro-Manager (here an empty installation, so the demo configuration cannot load)."""
    monkeypatch.setenv("MICROMANAGER_PATH", str(tmp_path))
    with pytest.raises(DeviceError, match="loading demo.cfg failed"):
        MMCamera("camera", MMCamera.Settings(config_file=DEMO), context)
    with pytest.raises(DeviceError, match="loading demo.cfg failed"):
        MMCamera("camera", MMCamera.Settings(config_file=DEMO, adapter_paths=[tmp_path]), context)
    camera = MMCamera("camera", MMCamera.Settings(config_file=DEMO, adapter_paths=[tmp_path], demo_adapters=True),
                      context)
    camera.close()
