"""The Basler driver on pylon's camera emulation, delivering the digital twin's rendered frames.

Importing this module sets ``PYLON_CAMEMU`` (pylon reads it when it loads its transport layers), so the
emulated camera is listed next to any real one; the rehearsal opens it by its serial number.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from drivers.context import DeviceContext
from drivers.errors import DeviceError
from drivers.frame import RawImage
from drivers.interfaces import Camera, Roi
from sim.protocols.faults import DELAY_S, check_fault

os.environ.setdefault("PYLON_CAMEMU", "1")
from drivers.basler import BaslerCamera  # noqa: E402
from pypylon import pylon  # noqa: E402

log = logging.getLogger(__name__)


class FrameFeed:
    """The folder the emulation reads: one PNG, replaced atomically by every rendered frame."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="micromanip-camemu-")
        self.folder = Path(self._dir.name)
        self.path = self.folder / "frame.png"

    def write(self, pixels: np.ndarray) -> None:
        tmp = self.folder / "next.tmp"
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=0)
        os.replace(tmp, self.path)

    def close(self) -> None:
        self._dir.cleanup()


class TwinFedBasler(BaslerCamera):
    """Every snap renders the twin at the current stage, focus and pipette, writes the frame where the
    emulated camera reads, and restarts the grab (the emulation reads its files when grabbing starts)
    before the driver's own software-trigger snap. Sensor size, ROI, exposure, gain and frame rate are set
    on both, so the twin renders what the emulated camera is configured for. The pixels come back through
    pylon unchanged; frame id, capture time and ground truth are the twin's.

    :meth:`inject` makes the camera fail as a USB camera does (:mod:`sim.protocols.faults`): images lost
    in transfer and a trigger never ready go through pylon's own timeouts; a corrupted buffer, a
    GenICam error and an unplugged camera are raised as the driver reports them (pylon's emulation
    cannot produce them).
    """

    def __init__(self, name: str, settings: BaslerCamera.Settings, context: DeviceContext, twin: Camera) -> None:
        self.twin = twin
        self.feed = FrameFeed()
        r = twin.roi
        roi = settings.roi or (r.x, r.y, r.width, r.height)
        self.feed.write(np.zeros((roi[3], roi[2]), np.uint8))
        self.fault: str | None = None
        self.watcher = None  # control.supervisor.Supervisor.attach: times the camera from the rendered image on
        try:
            super().__init__(name, settings.model_copy(update={"image_dir": self.feed.folder, "roi": roi}), context)
        except Exception:
            self.feed.close()
            raise
        if twin.bit_depth != self.bit_depth:
            self.close()
            raise DeviceError(name, "open", f"pixel format gives {self.bit_depth} bits but the twin camera has "
                                            f"{twin.bit_depth}: set the twin's sensor.bit_depth to match")

    @property
    def sensor_shape(self) -> tuple[int, int]:
        return self.twin.sensor_shape

    def set_roi(self, roi: Roi) -> None:
        super().set_roi(roi)
        self.twin.set_roi(roi)

    def set_exposure_ms(self, exposure_ms: float) -> None:
        super().set_exposure_ms(exposure_ms)
        self.twin.set_exposure_ms(exposure_ms)

    def set_gain_db(self, gain_db: float) -> None:
        super().set_gain_db(gain_db)
        self.twin.set_gain_db(gain_db)

    def set_frame_rate_hz(self, frame_rate_hz: float) -> None:
        super().set_frame_rate_hz(frame_rate_hz)
        self.twin.set_frame_rate_hz(frame_rate_hz)

    def inject(self, fault: str) -> None:
        """A fault of :mod:`sim.protocols.faults` from now on."""
        self.fault = check_fault(fault)
        log.warning("%s: fault injected: %s", self.name, fault)

    def _faulty_snap(self, timeout_s: float | None) -> RawImage:
        timeout_ms = int(1000 * (timeout_s or self.s.grab_timeout_s))
        if self.fault == "drop_reply":  # the image never arrives: pylon's own timeout
            with self._lock:
                self._arm()
                result = self._cam.RetrieveResult(timeout_ms, pylon.TimeoutHandling_Return)
            if result is not None and result.IsValid():
                result.Release()
            raise DeviceError(self.name, "snap", f"no image within {timeout_ms} ms")
        if self.fault == "stall":
            time.sleep(timeout_ms / 1000)
            raise DeviceError(self.name, "snap", f"trigger not ready within {timeout_ms} ms (camera not responding)")
        if self.fault == "garbage":
            self._failed += 1
            raise DeviceError(self.name, "snap", "failed buffer: the image payload is incomplete or corrupted")
        if self.fault == "error_code":
            raise DeviceError(self.name, "snap", "ExecuteSoftwareTrigger: GenICam error (node not writable)")
        if self.fault == "disconnect":
            raise DeviceError(self.name, "snap", "camera disconnected")
        time.sleep(DELAY_S)  # delay: the image comes late
        return self._snap(timeout_s)

    def snap(self, timeout_s: float | None = None) -> RawImage:
        if self.fault is not None:
            return self._faulty_snap(timeout_s)
        return self._snap(timeout_s)

    def _snap(self, timeout_s: float | None) -> RawImage:
        rendered = self.twin.snap()
        if self.watcher is not None:  # the camera answers from here on; the render was the world's time
            self.watcher.expect("camera", restart=True)
        self.feed.write(rendered.pixels)
        with self._lock:
            self._disarm()
        image = super().snap(timeout_s)
        return replace(image, frame_id=rendered.frame_id, capture_time_s=rendered.capture_time_s,
                       truth=rendered.truth)

    def start_streaming(self) -> None:
        raise DeviceError(self.name, "start_streaming", "the rehearsal camera delivers frames by snap only "
                                                        "(pylon's emulation reads its files when grabbing starts)")

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.feed.close()



