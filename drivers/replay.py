"""A recording played as a camera (``driver: replay``): operators run the project's perception on their own
video, image folder or multi-page TIFF through the GUI, ``bench perception`` and perception-only trials.

The recording fixes the pixel size at the sample (``um_per_px``), whatever the rig's objective says: the
camera reports a sensor pixel of ``um_per_px`` x magnification, so the rig's frames carry the declared
size. Frames are paced at ``frame_rate_hz`` (default: the rate stored in a video file) on the rig's clock:
in lockstep time each ``snap`` advances the clock one frame period; in real time streaming emits at that
rate. At the end the recording starts again (``loop: true``, default) or the camera ends cleanly:
``snap`` raises a DeviceError saying so and streaming stops. A ROI crops the recorded frames.
A recording cannot follow a stage or focus move: rigs with this camera run perception only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import ConfigError, DeviceError, LimitError
from drivers.frame import RawImage
from drivers.interfaces import Camera, Roi
from drivers.recording import Recording, RecordingError, open_recording
from drivers.units import Hz, Ms

log = logging.getLogger(__name__)


class ReplayCamera(Camera):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: Path = Field(description="video file, folder of images (name order) or multi-page TIFF / OME-TIFF")
        um_per_px: float = Field(gt=0, le=100, description="pixel size at the sample, um")
        frame_rate_hz: Hz | None = Field(None, gt=0, le=10_000,
                                         description="playback rate; default: the video's own (required otherwise)")
        loop: bool = Field(True, description="start again at the end; false: the camera ends with the recording")
        exposure_ms: Ms = Field(4.0, gt=0, description="nominal, reported in frames (the recording fixed it)")
        roi: tuple[int, int, int, int] | None = None

    def __init__(self, name: str, settings: Settings, context: DeviceContext, recording: Recording) -> None:
        super().__init__(name, context.clock)
        self.s = settings
        self.recording = recording
        self._sensor_pixel_um = settings.um_per_px * context.objective.magnification
        rate = settings.frame_rate_hz or recording.fps
        if rate is None:
            raise ConfigError(f"{name}.frame_rate_hz: {recording.path} stores no frame rate; declare it")
        self._frame_rate_hz = float(rate)
        self._bit_depth = 8 if recording.read(0).dtype.itemsize == 1 else 16
        self._exposure_ms = settings.exposure_ms
        self._gain_db = 0.0
        h, w = recording.shape
        self._roi = Roi(0, 0, w, h)
        if settings.roi is not None:
            self.set_roi(Roi(*settings.roi))
        self._index = 0  # next frame of the recording
        self._frame_id = 0
        self._next_slot = context.clock.now()
        self._lock = threading.Lock()
        self._skipped = 0
        self._stream: threading.Thread | None = None
        self._streaming = threading.Event()
        self.ended = False

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> ReplayCamera:
        try:
            recording = open_recording(settings.path)
        except RecordingError as exc:
            raise ConfigError(f"{name}.path: {exc}") from None
        try:
            return cls(name, settings, context, recording)
        except BaseException:
            recording.close()
            raise

    # ----- settings --------------------------------------------------------------------------------------
    @property
    def sensor_shape(self) -> tuple[int, int]:
        return self.recording.shape

    @property
    def sensor_pixel_um(self) -> float:
        return self._sensor_pixel_um

    @property
    def roi(self) -> Roi:
        return self._roi

    def set_roi(self, roi: Roi) -> None:
        h, w = self.sensor_shape
        if roi.width < 8 or roi.height < 8 or roi.x < 0 or roi.y < 0 or roi.x + roi.width > w or roi.y + roi.height > h:
            raise LimitError(self.name, "set_roi", f"{roi} does not fit the {w}x{h} recording (min 8x8)")
        self._roi = roi

    @property
    def exposure_ms(self) -> float:
        return self._exposure_ms

    def set_exposure_ms(self, exposure_ms: float) -> None:
        if not exposure_ms > 0:
            raise LimitError(self.name, "set_exposure_ms", f"exposure must be > 0 ms, got {exposure_ms}")
        self._exposure_ms = float(exposure_ms)  # nominal: the recording's exposure is fixed

    @property
    def gain_db(self) -> float:
        return self._gain_db

    def set_gain_db(self, gain_db: float) -> None:
        if gain_db != 0:
            raise LimitError(self.name, "set_gain_db", "a recording's gain is fixed (0 dB)")

    @property
    def frame_rate_hz(self) -> float:
        return self._frame_rate_hz

    def set_frame_rate_hz(self, frame_rate_hz: float) -> None:
        if not 0 < frame_rate_hz <= 10_000:
            raise LimitError(self.name, "set_frame_rate_hz", f"{frame_rate_hz} Hz outside (0, 10000] Hz")
        self._frame_rate_hz = float(frame_rate_hz)

    @property
    def bit_depth(self) -> int:
        return self._bit_depth

    @property
    def frames_skipped(self) -> int:
        return self._skipped

    # ----- acquisition -----------------------------------------------------------------------------------
    def _next_image(self) -> RawImage:
        """The recording's next frame, stamped now; at the end: loop, or end the camera."""
        with self._lock:
            if self._index >= len(self.recording):
                if not self.s.loop:
                    self.ended = True
                    raise DeviceError(self.name, "snap", f"end of the recording ({len(self.recording)} frames)")
                self._index = 0
            try:
                pixels = self.recording.read(self._index)
            except RecordingError as exc:
                if self._index and not self.s.loop:  # a video shorter than its header said
                    self.ended = True
                    raise DeviceError(self.name, "snap", f"end of the recording ({self._index} frames)") from None
                if self._index:
                    self._index = 0
                    pixels = self.recording.read(0)
                else:
                    raise DeviceError(self.name, "snap", str(exc)) from None
            self._index += 1
            self._frame_id += 1
            r = self._roi
            crop = pixels[r.y : r.y + r.height, r.x : r.x + r.width]
            return RawImage(crop.copy(), self._frame_id, self.clock.now(), self._exposure_ms, (r.x, r.y))

    def snap(self, timeout_s: float = 2.0) -> RawImage:
        period = 1.0 / self._frame_rate_hz
        now = self.clock.now()
        slot = max(self._next_slot, now)
        self._next_slot = slot + period
        self.clock.sleep(slot - now)
        return self._next_image()

    def start_streaming(self) -> None:
        if self.clock.is_simulated:
            raise DeviceError(self.name, "start_streaming", "streaming needs a real-time clock; use snap() in lockstep")
        if self._stream is not None:
            return
        self._streaming.set()
        self._stream = threading.Thread(target=self._stream_loop, name=f"{self.name}-replay", daemon=True)
        self._stream.start()

    def _stream_loop(self) -> None:
        period = 1.0 / self._frame_rate_hz
        due = self.clock.now()
        while self._streaming.is_set():
            self.clock.sleep(max(0.0, due - self.clock.now()))
            try:
                self.image_ready.emit(self._next_image())
            except DeviceError as exc:
                if self.ended:
                    log.info("%s", exc)
                    self._streaming.clear()
                    break
                log.error("%s", exc)
            due += period
            missed = int((self.clock.now() - due) // period)
            if missed > 0:  # the recording plays on in real time, as a camera's scene would
                with self._lock:
                    self._index += missed
                    if self.s.loop:
                        self._index %= len(self.recording)
                self._skipped += missed
                due += missed * period

    def stop_streaming(self) -> None:
        self._streaming.clear()
        if self._stream is not None and self._stream is not threading.current_thread():
            self._stream.join(timeout=2.0)
        self._stream = None

    def close(self) -> None:
        super().close()
        self.recording.close()
