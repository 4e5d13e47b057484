"""Micro-Manager bridge through pymmcore-plus: any camera, XY stage or focus drive Micro-Manager supports
becomes a micromanip device.

All bridge devices of a process share one ``CMMCorePlus`` loaded from a Micro-Manager configuration
file (``config_file``), reference-counted so it unloads when the last device closes. Micro-Manager
errors (``RuntimeError`` from the core) become :class:`DeviceError` naming our device and the action.

Micro-Manager has no portable speed or frame-rate setting: stage speeds are the controller's own (set
them in Micro-Manager), and streaming paces a continuous sequence acquisition at ``frame_rate_hz``.
Stopping a sequence waits until the core reports it stopped: a process that exits during the stop can
abort inside the adapter.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError, LimitError
from drivers.frame import RawImage
from drivers.interfaces import AxisLimits, Camera, FocusDrive, MoveHandle, Roi, XYStage
from drivers.units import Hz, Ms, Um, UmPerS, UmRange

try:
    from pymmcore_plus import CMMCorePlus
except ImportError as exc:  # the registry turns this into a ConfigError naming the library
    raise ImportError("pymmcore-plus is not installed (pip install 'micromanip[hardware]')",
                      name="pymmcore_plus") from exc

log = logging.getLogger(__name__)


class _Core:
    """The process's one Micro-Manager core, loaded once per configuration file."""

    core: Any = None
    config: Path | None = None
    users = 0
    lock = threading.Lock()

    @classmethod
    def acquire(cls, name: str, config_file: Path, adapter_paths: list[Path]) -> Any:
        with cls.lock:
            if cls.core is not None and config_file != cls.config:
                raise DeviceError(name, "open", f"Micro-Manager is already loaded from {cls.config}; one "
                                                f"configuration per process (asked for {config_file})")
            if cls.core is None:
                if not config_file.is_file():
                    raise DeviceError(name, "open", f"Micro-Manager configuration {config_file} not found")
                # the bridge uses no core events: psygnal signals, which need no Qt event loop in this
                # thread (with a Qt app running pymmcore-plus would otherwise pick Qt signals)
                os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
                core = CMMCorePlus()  # adapters: pymmcore-plus's search for an installed Micro-Manager ...
                if adapter_paths:  # ... unless the rig file names the folders
                    core.setDeviceAdapterSearchPaths([str(p) for p in adapter_paths])
                try:
                    core.loadSystemConfiguration(str(config_file))
                except (RuntimeError, OSError) as exc:
                    raise DeviceError(name, "open", f"loading {config_file.name} failed: "
                                                    f"{str(exc).splitlines()[0]}") from None
                cls.core, cls.config = core, config_file
            cls.users += 1
            return cls.core

    @classmethod
    def release(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0 and cls.core is not None:
                cls.core.unloadAllDevices()
                cls.core, cls.config, cls.users = None, None, 0


def _demo_adapter_path(name: str) -> Path:
    """The folder of Micro-Manager's demo adapters shipped by ``mm-test-adapters`` (a development extra)."""
    try:
        import mm_test_adapters
    except ImportError:
        raise DeviceError(name, "open", "demo_adapters needs the mm-test-adapters package "
                                        "(pip install 'micromanip[dev]')") from None
    return Path(mm_test_adapters.device_adapter_path())


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config_file: Path = Field(description="Micro-Manager hardware configuration (.cfg)")
    adapter_paths: list[Path] = Field(default_factory=list, description="folders with mmgr_dal_* adapters; "
                                      "empty: the Micro-Manager installation pymmcore-plus finds")
    demo_adapters: bool = Field(False, description="also search Micro-Manager's demo adapters from the "
                                "mm-test-adapters package (tests and benchmarks without Micro-Manager)")
    device: str = Field("", description="device label in the configuration; empty = the core's default")


class _Bridged:
    """What every bridge device shares: the core, its label, and one way to call it."""

    name: str

    def _attach(self, settings: _Settings, default_label: Callable[[Any], str]) -> None:
        paths = settings.adapter_paths + ([_demo_adapter_path(self.name)] if settings.demo_adapters else [])
        self._core = _Core.acquire(self.name, settings.config_file, paths)
        self.label = settings.device or default_label(self._core)
        if not self.label or self.label not in self._core.getLoadedDevices():
            _Core.release()
            raise DeviceError(self.name, "open", f"no device {self.label!r} in {settings.config_file.name} "
                                                 f"(loaded: {', '.join(self._core.getLoadedDevices())})")

    def _call(self, action: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RuntimeError as exc:
            raise DeviceError(self.name, action, f"Micro-Manager: {str(exc).splitlines()[0]}") from None

    def _detach(self) -> None:
        if self._core is not None:
            self._core = None
            _Core.release()


class _BridgedMotion(_Bridged):
    """Stop and close of a bridged stage or focus drive (Micro-Manager's per-device ``stop``)."""

    def stop(self) -> None:
        if self._core is None:
            return
        try:
            self._core.stop(self.label)
        except RuntimeError as exc:
            raise DeviceError(self.name, "stop", f"Micro-Manager: {exc}") from None

    def close(self) -> None:
        try:
            self.stop_quietly()
        finally:
            self._detach()
            self.forget_estop()


class MMCamera(_Bridged, Camera):
    class Settings(_Settings):
        exposure_ms: Ms = Field(4.0, gt=0)
        frame_rate_hz: Hz = Field(40.0, gt=0)
        sensor_pixel_um: Um = Field(5.86, gt=0)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        Camera.__init__(self, name, context.clock)
        self.s = settings
        self._attach(settings, lambda core: core.getCameraDevice())
        self._frame_rate_hz = settings.frame_rate_hz
        self._frame_id = 0
        self._skipped = 0
        self._stream: threading.Thread | None = None
        self._streaming = threading.Event()
        self._call("open", self._core.clearROI)
        self._sensor = (int(self._core.getImageHeight()), int(self._core.getImageWidth()))
        self.set_exposure_ms(settings.exposure_ms)

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> MMCamera:
        return cls(name, settings, context)

    @property
    def sensor_shape(self) -> tuple[int, int]:
        return self._sensor

    @property
    def sensor_pixel_um(self) -> float:
        return self.s.sensor_pixel_um

    @property
    def roi(self) -> Roi:
        return Roi(*self._call("roi", self._core.getROI, self.label))

    def set_roi(self, roi: Roi) -> None:
        h, w = self._sensor
        if roi.width < 1 or roi.height < 1 or roi.x < 0 or roi.y < 0 or roi.x + roi.width > w or roi.y + roi.height > h:
            raise LimitError(self.name, "set_roi", f"{roi} does not fit the {w}x{h} sensor")
        self._call("set_roi", self._core.setROI, self.label, roi.x, roi.y, roi.width, roi.height)

    @property
    def exposure_ms(self) -> float:
        return float(self._call("exposure_ms", self._core.getExposure, self.label))

    def set_exposure_ms(self, exposure_ms: float) -> None:
        if not exposure_ms > 0:
            raise LimitError(self.name, "set_exposure_ms", f"exposure must be > 0 ms, got {exposure_ms}")
        self._call("set_exposure_ms", self._core.setExposure, self.label, float(exposure_ms))

    def _gain_property(self, action: str) -> str:
        if not self._core.hasProperty(self.label, "Gain"):
            raise DeviceError(self.name, action, f"{self.label} has no Gain property")
        return "Gain"

    @property
    def gain_db(self) -> float:
        return float(self._call("gain_db", self._core.getProperty, self.label, self._gain_property("gain_db")))

    def set_gain_db(self, gain_db: float) -> None:
        prop = self._gain_property("set_gain_db")
        if self._core.hasPropertyLimits(self.label, prop):
            lo = self._core.getPropertyLowerLimit(self.label, prop)
            hi = self._core.getPropertyUpperLimit(self.label, prop)
            if not lo <= gain_db <= hi:
                raise LimitError(self.name, "set_gain_db", f"Gain={gain_db:g} outside [{lo:g}, {hi:g}]")
        self._call("set_gain_db", self._core.setProperty, self.label, prop, gain_db)

    @property
    def frame_rate_hz(self) -> float:
        return self._frame_rate_hz

    def set_frame_rate_hz(self, frame_rate_hz: float) -> None:
        if not frame_rate_hz > 0:
            raise LimitError(self.name, "set_frame_rate_hz", f"frame rate must be > 0 Hz, got {frame_rate_hz}")
        self._frame_rate_hz = float(frame_rate_hz)

    @property
    def bit_depth(self) -> int:
        return int(self._core.getImageBitDepth())

    @property
    def frames_skipped(self) -> int:
        return self._skipped

    def _image(self, pixels: np.ndarray) -> RawImage:
        self._frame_id += 1
        roi = self.roi
        return RawImage(np.array(pixels, copy=True), self._frame_id, self.clock.now(), self.exposure_ms,
                        (roi.x, roi.y))

    def snap(self, timeout_s: float = 2.0) -> RawImage:
        if self._streaming.is_set():
            raise DeviceError(self.name, "snap", "the camera is streaming; stop streaming first")
        self._call("snap", self._core.snapImage)
        return self._image(self._call("snap", self._core.getImage))

    def start_streaming(self) -> None:
        if self._streaming.is_set():
            return
        self._call("start_streaming", self._core.startContinuousSequenceAcquisition, 1000.0 / self._frame_rate_hz)
        self._streaming.set()
        self._stream = threading.Thread(target=self._drain, name=f"{self.name}-grab", daemon=True)
        self._stream.start()

    def _drain(self) -> None:
        """Emit the newest image; images that queued up meanwhile are counted as skipped."""
        core = self._core
        while self._streaming.is_set():
            waiting = core.getRemainingImageCount()
            if waiting == 0:
                time.sleep(0.002)
                continue
            try:
                pixels = core.popNextImage()
                for _ in range(waiting - 1):
                    pixels = core.popNextImage()
            except (RuntimeError, IndexError):
                continue
            self._skipped += waiting - 1
            try:
                self.image_ready.emit(self._image(pixels))
            except Exception:
                log.exception("%s: frame handler failed", self.name)

    def stop_streaming(self) -> None:
        if not self._streaming.is_set():
            return
        self._streaming.clear()
        if self._stream is not None and self._stream is not threading.current_thread():
            self._stream.join(timeout=2.0)
        self._stream = None
        self._call("stop_streaming", self._core.stopSequenceAcquisition)
        deadline = time.monotonic() + 5.0
        while self._core.isSequenceRunning() and time.monotonic() < deadline:
            time.sleep(0.005)

    @property
    def is_streaming(self) -> bool:
        return self._streaming.is_set()

    def close(self) -> None:
        if self._core is not None:
            self.stop_streaming()
            self._detach()


class MMXYStage(_BridgedMotion, XYStage):
    class Settings(_Settings):
        x_limits_um: UmRange = (-50000.0, 50000.0)
        y_limits_um: UmRange = (-35000.0, 35000.0)
        max_speed_um_s: UmPerS = Field(5000.0, gt=0)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        XYStage.__init__(self, name, context.clock, AxisLimits(*settings.x_limits_um),
                         AxisLimits(*settings.y_limits_um), settings.max_speed_um_s)
        self._attach(settings, lambda core: core.getXYStageDevice())

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> MMXYStage:
        return cls(name, settings, context)

    def position_um(self) -> tuple[float, float]:
        x, y = self._call("position_um", self._core.getXYPosition, self.label)
        return float(x), float(y)

    def is_moving(self) -> bool:
        return bool(self._call("is_moving", self._core.deviceBusy, self.label))

    def _start_move(self, x_um: float, y_um: float, speed_um_s: float) -> MoveHandle:
        self._call("move_to_um", self._core.setXYPosition, self.label, x_um, y_um)
        return MoveHandle(self, "move_to_um", lambda: not self._core.deviceBusy(self.label), self.clock)



class MMFocus(_BridgedMotion, FocusDrive):
    class Settings(_Settings):
        limits_um: UmRange = (0.0, 100.0)
        max_speed_um_s: UmPerS = Field(200.0, gt=0)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        FocusDrive.__init__(self, name, context.clock, AxisLimits(*settings.limits_um), settings.max_speed_um_s)
        self._attach(settings, lambda core: core.getFocusDevice())

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> MMFocus:
        return cls(name, settings, context)

    def z_um(self) -> float:
        return float(self._call("z_um", self._core.getPosition, self.label))

    def is_moving(self) -> bool:
        return bool(self._call("is_moving", self._core.deviceBusy, self.label))

    def _start_move(self, z_um: float, speed_um_s: float) -> MoveHandle:
        self._call("move_to_um", self._core.setPosition, self.label, z_um)
        return MoveHandle(self, "move_to_um", lambda: not self._core.deviceBusy(self.label), self.clock)
