"""Basler USB3/GigE cameras through pypylon (SFNC 2 node names, e.g. the acA1920-40u).

Every setting goes through :meth:`BaslerCamera._set`, which checks that the node exists and is writable on
this camera and that the value lies in the range the camera reports *now* (ranges move with ROI, pixel
format and frame rate), so an out-of-range request is a :class:`LimitError` naming the node and the
range, never a GenICam traceback.

Streaming uses ``GrabStrategy_LatestImageOnly`` on pylon's own grab thread: the handler copies the buffer
at once (pylon reuses it), emits ``image_ready``, and counts frames the camera produced but nobody saw
from gaps in ``BlockID``. ``snap`` uses a software trigger, so tests get exactly one known frame.

Under pylon's camera emulation (``PYLON_CAMEMU=1``) ``image_dir`` makes the emulated camera deliver the
image files of a folder (read when grabbing starts) instead of its test pattern.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError, LimitError
from drivers.frame import RawImage
from drivers.interfaces import Camera, Roi
from drivers.units import Db, Hz, Ms, Seconds, Um

try:
    from pypylon import genicam, pylon
except ImportError as exc:  # the registry turns this into a ConfigError naming the library
    raise ImportError("pypylon is not installed (pip install 'micromanip[hardware]')", name="pypylon") from exc

log = logging.getLogger(__name__)

BIT_DEPTH = {"Mono8": 8, "Mono12": 12}


class _Grabbed(pylon.ImageEventHandler):
    """Runs on pylon's grab thread; hands each result to the camera and never lets an exception escape
    into pylon (it would be swallowed there)."""

    def __init__(self, camera: BaslerCamera) -> None:
        super().__init__()
        self._camera = camera

    def OnImageGrabbed(self, _instant_camera: Any, result: Any) -> None:  # noqa: N802 (pylon's name)
        try:
            self._camera._on_result(result)
        except Exception:
            log.exception("%s: frame handler failed", self._camera.name)


class BaslerCamera(Camera):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        serial: str = Field("", description="serial number printed on the camera; empty = the first camera found")
        pixel_format: Literal["Mono8", "Mono12"] = "Mono8"
        exposure_ms: Ms = Field(4.0, gt=0)
        gain_db: Db = Field(0.0, ge=0)
        frame_rate_hz: Hz = Field(40.0, gt=0)
        roi: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height in sensor pixels")
        sensor_pixel_um: Um = Field(5.86, gt=0, description="pixel pitch (pylon does not report it)")
        grab_timeout_s: Seconds = Field(2.0, gt=0)
        image_dir: Path | None = Field(None, description="camera emulation only: folder of images to deliver")

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock)
        self.s = settings
        self._lock = threading.Lock()
        self._skipped = 0
        self._failed = 0
        self._last_block: int | None = None
        self._armed = False  # grabbing in software-trigger mode for snap()
        self._streaming = False
        self._cam = self._open(settings.serial)
        try:
            self._configure(settings)
        except Exception:
            self._cam.Close()
            raise
        self._handler = _Grabbed(self)
        self._cam.RegisterImageEventHandler(self._handler, pylon.RegistrationMode_Append, pylon.Cleanup_None)

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> BaslerCamera:
        return cls(name, settings, context)

    # ----- opening ---------------------------------------------------------------------------------------
    def _open(self, serial: str) -> Any:
        try:
            factory = pylon.TlFactory.GetInstance()
            found = list(factory.EnumerateDevices())
        except genicam.GenericException as exc:
            raise DeviceError(self.name, "open", f"pylon could not list cameras: {exc.GetDescription()}") from None
        if not found:
            raise DeviceError(self.name, "open", "no Basler camera found (USB3: check the cable, udev rules and "
                                                 "usbfs memory; see docs/hardware.md)")
        chosen = [d for d in found if not serial or d.GetSerialNumber() == serial]
        if not chosen:
            have = ", ".join(f"{d.GetModelName()} {d.GetSerialNumber()}" for d in found)
            raise DeviceError(self.name, "open", f"no camera with serial {serial!r} (found: {have})")
        try:
            cam = pylon.InstantCamera(factory.CreateDevice(chosen[0]))
            cam.Open()
        except genicam.GenericException as exc:
            raise DeviceError(self.name, "open", f"camera busy or not accessible: {exc.GetDescription()}") from None
        self.model = f"{chosen[0].GetModelName()} {chosen[0].GetSerialNumber()}"
        log.info("%s: opened %s", self.name, self.model)
        return cam

    def _configure(self, s: Settings) -> None:
        if s.image_dir is not None:
            if not self._available("ImageFileMode"):
                raise DeviceError(self.name, "open", "image_dir works only with pylon's camera emulation "
                                                     "(PYLON_CAMEMU=1); this camera has no ImageFileMode")
            if not s.image_dir.is_dir():
                raise DeviceError(self.name, "open", f"image_dir {s.image_dir} is not a folder")
            self._set("TestImageSelector", "Off", "open")
            self._set("ImageFilename", str(s.image_dir), "open")
            self._set("ImageFileMode", "On", "open")
        self._set("TriggerMode", "Off", "open")
        self._set("PixelFormat", s.pixel_format, "open")
        if s.roi is not None:
            self.set_roi(Roi(*s.roi))
        self.set_exposure_ms(s.exposure_ms)
        self.set_gain_db(s.gain_db)
        self.set_frame_rate_hz(s.frame_rate_hz)

    # ----- nodes: the one place settings reach the camera -----------------------------------------------
    def _available(self, node: str) -> bool:
        n = self._cam.GetNodeMap().GetNode(node)
        return n is not None and genicam.IsAvailable(n)

    def _param(self, node: str, action: str) -> Any:
        n = self._cam.GetNodeMap().GetNode(node)
        if n is None or not genicam.IsAvailable(n):
            raise DeviceError(self.name, action, f"this camera has no {node} node")
        return getattr(self._cam, node)

    def _get(self, node: str, action: str = "read") -> Any:
        try:
            return self._param(node, action).Value
        except genicam.GenericException as exc:
            raise DeviceError(self.name, action, f"reading {node} failed: {exc.GetDescription()}") from None

    def _set(self, node: str, value: Any, action: str) -> None:
        param = self._param(node, action)
        if not genicam.IsWritable(param.Node) and self._armed:
            self._disarm()  # ROI and pixel format are locked while grabbing
        if not genicam.IsWritable(param.Node):
            raise DeviceError(self.name, action, f"{node} is not writable now (streaming?)")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and hasattr(param, "Min"):
            lo, hi = param.Min, param.Max
            if not lo <= value <= hi:
                raise LimitError(self.name, action, f"{node}={value:g} outside the camera's range [{lo:g}, {hi:g}]")
            inc = getattr(param, "Inc", None) if isinstance(value, int) else None
            if inc and (value - lo) % inc:
                raise LimitError(self.name, action, f"{node}={value} must be {lo} + a multiple of {inc}")
        try:
            param.Value = value
        except genicam.GenericException as exc:
            raise DeviceError(self.name, action, f"setting {node}={value!r} failed: {exc.GetDescription()}") from None

    # ----- Camera interface -------------------------------------------------------------------------------
    @property
    def sensor_shape(self) -> tuple[int, int]:
        if self._available("SensorHeight"):
            return int(self._get("SensorHeight")), int(self._get("SensorWidth"))
        return int(self._get("HeightMax")), int(self._get("WidthMax"))

    @property
    def sensor_pixel_um(self) -> float:
        return self.s.sensor_pixel_um

    @property
    def roi(self) -> Roi:
        return Roi(int(self._get("OffsetX")), int(self._get("OffsetY")), int(self._get("Width")),
                   int(self._get("Height")))

    def set_roi(self, roi: Roi) -> None:
        height, width = self.sensor_shape
        if roi.width < 1 or roi.height < 1 or roi.x < 0 or roi.y < 0 or roi.x + roi.width > width \
                or roi.y + roi.height > height:
            raise LimitError(self.name, "set_roi", f"{roi} does not fit the {width}x{height} sensor")
        # offsets first to 0 so the new size fits, then size, then offsets
        self._set("OffsetX", 0, "set_roi")
        self._set("OffsetY", 0, "set_roi")
        self._set("Width", roi.width, "set_roi")
        self._set("Height", roi.height, "set_roi")
        self._set("OffsetX", roi.x, "set_roi")
        self._set("OffsetY", roi.y, "set_roi")

    @property
    def exposure_ms(self) -> float:
        return float(self._get("ExposureTime")) / 1000.0

    def set_exposure_ms(self, exposure_ms: float) -> None:
        self._set("ExposureTime", float(exposure_ms) * 1000.0, "set_exposure_ms")

    @property
    def gain_db(self) -> float:
        return float(self._get("Gain"))

    def set_gain_db(self, gain_db: float) -> None:
        self._set("Gain", float(gain_db), "set_gain_db")

    @property
    def frame_rate_hz(self) -> float:
        return float(self._get("AcquisitionFrameRate"))

    def set_frame_rate_hz(self, frame_rate_hz: float) -> None:
        self._set("AcquisitionFrameRateEnable", True, "set_frame_rate_hz")
        self._set("AcquisitionFrameRate", float(frame_rate_hz), "set_frame_rate_hz")

    @property
    def bit_depth(self) -> int:
        return BIT_DEPTH[str(self._get("PixelFormat"))]

    @property
    def frames_skipped(self) -> int:
        return self._skipped

    @property
    def frames_failed(self) -> int:
        """Buffers the camera delivered incomplete (bandwidth, cable); they are dropped, never emitted."""
        return self._failed

    # ----- grabbing ---------------------------------------------------------------------------------------
    def _image(self, result: Any) -> RawImage:
        pixels = np.array(result.Array, copy=True)  # pylon reuses the buffer after the handler returns
        return RawImage(pixels, int(result.BlockID), self.clock.now(), self.exposure_ms,
                        (int(result.OffsetX), int(result.OffsetY)))

    def _on_result(self, result: Any) -> None:
        if not self._streaming:  # pylon also calls handlers for snap's RetrieveResult; snap handles those
            return
        if not result.GrabSucceeded():
            self._failed += 1
            log.warning("%s: failed buffer %s: %s", self.name, result.BlockID, result.GetErrorDescription())
            return
        block = int(result.BlockID)
        if self._last_block is not None and block > self._last_block + 1:
            self._skipped += block - self._last_block - 1
        self._last_block = block
        self.image_ready.emit(self._image(result))

    def _arm(self) -> None:
        """Grab in software-trigger mode and stay armed between snaps: restarting the grab costs time
        and, under emulation, rewinds the image files."""
        if self._armed:
            return
        self._set("TriggerSelector", "FrameStart", "snap")
        self._set("TriggerMode", "On", "snap")
        self._set("TriggerSource", "Software", "snap")
        try:
            self._cam.StartGrabbing(pylon.GrabStrategy_OneByOne, pylon.GrabLoop_ProvidedByUser)
        except genicam.GenericException as exc:
            raise DeviceError(self.name, "snap", exc.GetDescription()) from None
        self._armed = True

    def _disarm(self) -> None:
        if self._armed:
            self._cam.StopGrabbing()
            self._cam.TriggerMode.Value = "Off"
            self._armed = False

    def snap(self, timeout_s: float | None = None) -> RawImage:
        """One frame by software trigger; a failed buffer or a timeout is a DeviceError (nothing moves)."""
        timeout_ms = int(1000 * (timeout_s or self.s.grab_timeout_s))
        with self._lock:
            if self._streaming:
                raise DeviceError(self.name, "snap", "the camera is streaming; stop streaming first")
            self._arm()
            try:
                self._cam.WaitForFrameTriggerReady(timeout_ms, pylon.TimeoutHandling_ThrowException)
                self._cam.ExecuteSoftwareTrigger()
                result = self._cam.RetrieveResult(timeout_ms, pylon.TimeoutHandling_Return)
            except genicam.GenericException as exc:
                gone = self._cam.IsCameraDeviceRemoved()
                self._disarm()
                raise DeviceError(self.name, "snap", "camera disconnected" if gone else exc.GetDescription()) from None
            if result is None or not result.IsValid():
                self._disarm()
                raise DeviceError(self.name, "snap", f"no image within {timeout_ms} ms")
            try:
                if not result.GrabSucceeded():
                    self._failed += 1
                    raise DeviceError(self.name, "snap", f"failed buffer: {result.GetErrorDescription()}")
                return self._image(result)
            finally:
                result.Release()

    def start_streaming(self) -> None:
        with self._lock:
            if self._streaming:
                return
            self._disarm()
            self._last_block = None
            self._streaming = True
            try:
                self._cam.StartGrabbing(pylon.GrabStrategy_LatestImageOnly, pylon.GrabLoop_ProvidedByInstantCamera)
            except genicam.GenericException as exc:
                self._streaming = False
                raise DeviceError(self.name, "start_streaming", exc.GetDescription()) from None

    def stop_streaming(self) -> None:
        # StopGrabbing waits for pylon's grab thread, which may be inside our handler: never hold _lock there
        if self._streaming:
            self._cam.StopGrabbing()
            self._streaming = False

    @property
    def is_streaming(self) -> bool:
        return self._streaming

    def close(self) -> None:
        self.stop_streaming()
        with self._lock:
            self._disarm()
        self._cam.DeregisterImageEventHandler(self._handler)
        self._cam.Close()
