"""The Basler driver against pylon's own camera emulation (``PYLON_CAMEMU``), fed with image files."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("PYLON_CAMEMU", "1")  # before pylon's transport layers load
pytest.importorskip("pypylon")

from drivers.basler import BaslerCamera  # noqa: E402
from drivers.errors import DeviceError, LimitError  # noqa: E402
from drivers.interfaces import Roi  # noqa: E402


@pytest.fixture
def image_dir(tmp_path):
    """Three 640x480 frames whose background level says which one it is (40, 80, 120)."""
    for i in range(3):
        pixels = np.full((480, 640), 40 * (i + 1), np.uint8)
        pixels[100:110, 200:220] = 250
        Image.fromarray(pixels).save(tmp_path / f"frame{i}.png")
    return tmp_path


@pytest.fixture
def open_camera(context):
    opened = []

    def make(**settings):
        cam = BaslerCamera("camera", BaslerCamera.Settings(**settings), context)
        opened.append(cam)
        return cam

    yield make
    for cam in opened:
        cam.close()


def test_settings_reach_the_camera_and_read_back(open_camera):
    cam = open_camera(exposure_ms=2.5, gain_db=3.0, frame_rate_hz=40, roi=(16, 8, 640, 480))
    assert cam.exposure_ms == pytest.approx(2.5)
    assert cam.gain_db == pytest.approx(3.0, abs=0.05)  # the camera quantises gain
    assert cam.frame_rate_hz == pytest.approx(40)
    assert cam.roi == Roi(16, 8, 640, 480)
    assert cam.bit_depth == 8
    assert cam.sensor_shape[0] >= 480 and cam.sensor_shape[1] >= 640


def test_snap_delivers_the_image_files_in_order(open_camera, image_dir):
    cam = open_camera(image_dir=image_dir, roi=(0, 0, 640, 480))
    frames = [cam.snap() for _ in range(4)]
    assert [int(f.pixels[0, 0]) for f in frames] == [40, 80, 120, 40]
    assert all(f.pixels.shape == (480, 640) and f.pixels.dtype == np.uint8 for f in frames)
    assert int(frames[0].pixels[105, 210]) == 250
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_mono12_is_delivered_in_uint16_with_12_bits(open_camera, image_dir):
    cam = open_camera(image_dir=image_dir, roi=(0, 0, 640, 480), pixel_format="Mono12")
    frame = cam.snap()
    assert cam.bit_depth == 12
    assert frame.pixels.dtype == np.uint16 and 0 < frame.pixels.max() <= 4095


def test_out_of_range_settings_are_refused_by_name(open_camera):
    cam = open_camera()
    with pytest.raises(LimitError, match=r"ExposureTime=1e\+09 outside the camera's range"):
        cam.set_exposure_ms(1e6)
    with pytest.raises(LimitError, match="Gain"):
        cam.set_gain_db(500)
    height, width = cam.sensor_shape
    with pytest.raises(LimitError, match="does not fit"):
        cam.set_roi(Roi(width - 10, 0, 64, 64))
    assert cam.exposure_ms == pytest.approx(4.0)  # nothing changed


def test_unknown_serial_and_bad_image_dir_name_the_problem(context, tmp_path):
    with pytest.raises(DeviceError, match="no camera with serial '12345678' \\(found: Emulation"):
        BaslerCamera("camera", BaslerCamera.Settings(serial="12345678"), context)
    with pytest.raises(DeviceError, match="is not a folder"):
        BaslerCamera("camera", BaslerCamera.Settings(image_dir=tmp_path / "missing"), context)


def test_a_failed_buffer_is_a_device_error_and_the_next_snap_works(open_camera, image_dir):
    cam = open_camera(image_dir=image_dir, roi=(0, 0, 640, 480))
    cam._cam.ForceFailedBufferCount.Value = 1  # pylon's emulation injects incomplete buffers on command
    cam._cam.ForceFailedBuffer.Execute()
    with pytest.raises(DeviceError, match="camera: snap: failed buffer"):
        cam.snap()
    assert cam.frames_failed == 1
    assert cam.snap().pixels.shape == (480, 640)


def test_streaming_keeps_only_the_latest_image_and_counts_the_skipped(open_camera, image_dir):
    cam = open_camera(image_dir=image_dir, roi=(0, 0, 640, 480), frame_rate_hz=200, exposure_ms=1)
    got: list[int] = []
    enough = threading.Event()

    def slow_consumer(image):
        got.append(image.frame_id)
        time.sleep(0.03)  # slower than the camera: older frames must be dropped, not queued
        if len(got) >= 8:
            enough.set()

    cam.image_ready.connect(slow_consumer)
    cam.start_streaming()
    assert enough.wait(5.0)
    cam._cam.ForceFailedBufferCount.Value = 3
    cam._cam.ForceFailedBuffer.Execute()
    time.sleep(0.2)
    with pytest.raises(DeviceError, match="camera: snap: the camera is streaming"):
        cam.snap()
    cam.stop_streaming()
    assert not cam.is_streaming
    assert got == sorted(got)
    assert cam.frames_skipped > 0
    assert cam.frames_failed >= 1
    assert cam.snap().pixels.shape == (480, 640)  # snapping works again after streaming
