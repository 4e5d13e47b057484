"""Simulated camera: renders the world at the current stage, focus and pipette pose.

In lockstep time ``snap`` advances the clock to the next frame slot (frame rate) plus the read-out
latency; in real time it waits for that slot. Same seed, same frames.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.context import DeviceContext
from drivers.errors import DeviceError, LimitError
from drivers.frame import RawImage
from drivers.interfaces import Camera, Roi
from drivers.units import Db, Hz, Ms, MsRange, Um
from sim.camera_model import SensorModel, background, draw_unit_noise, expose
from sim.render import View

log = logging.getLogger(__name__)


class SimCamera(Camera):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        width_px: int = Field(1920, ge=16, le=16384)
        height_px: int = Field(1200, ge=16, le=16384)
        sensor_pixel_um: Um = Field(5.86, gt=0)
        exposure_ms: Ms = Field(4.0, gt=0)
        exposure_range_ms: MsRange = (0.02, 1000.0)
        gain_db: Db = Field(0.0, ge=0)
        max_gain_db: Db = Field(24.0, ge=0)
        frame_rate_hz: Hz = Field(40.0, gt=0)
        max_frame_rate_hz: Hz = Field(41.0, gt=0)
        latency_ms: Ms = Field(3.0, ge=0)
        rotation_deg: float = Field(0.0, ge=-180, le=180, description="camera axes relative to the stage")
        roi: tuple[int, int, int, int] | None = None
        sensor: SensorModel = Field(default_factory=SensorModel)

    def __init__(self, name: str, settings: Settings, context: DeviceContext) -> None:
        super().__init__(name, context.clock)
        self.s = settings
        self.world = context.world
        self.objective = context.objective
        self._exposure_ms = settings.exposure_ms
        self._gain_db = settings.gain_db
        self._frame_rate_hz = settings.frame_rate_hz
        self._roi = Roi(0, 0, settings.width_px, settings.height_px)
        if settings.roi is not None:
            self.set_roi(Roi(*settings.roi))
        self._frame_id = 0
        self._next_slot = context.clock.now()
        self._rng = np.random.default_rng(context.world.seed + 23)
        self._skipped = 0
        self._stream: threading.Thread | None = None
        self._streaming = threading.Event()
        self._bg_cache: tuple[Roi, np.ndarray] | None = None
        self.with_masks = False

    @classmethod
    def from_settings(cls, name: str, settings: Settings, context: DeviceContext) -> SimCamera:
        return cls(name, settings, context)

    # ----- settings --------------------------------------------------------------------------------------
    @property
    def sensor_shape(self) -> tuple[int, int]:
        return self.s.height_px, self.s.width_px

    @property
    def sensor_pixel_um(self) -> float:
        return self.s.sensor_pixel_um

    @property
    def pixel_size_um(self) -> float:
        return self.objective.pixel_size_um(self.s.sensor_pixel_um)

    @property
    def roi(self) -> Roi:
        return self._roi

    def set_roi(self, roi: Roi) -> None:
        h, w = self.sensor_shape
        if roi.width < 16 or roi.height < 16 or roi.x < 0 or roi.y < 0 or roi.x + roi.width > w or roi.y + roi.height > h:
            raise LimitError(self.name, "set_roi", f"{roi} does not fit the {w}x{h} sensor (min 16x16)")
        self._roi = roi

    @property
    def exposure_ms(self) -> float:
        return self._exposure_ms

    def set_exposure_ms(self, exposure_ms: float) -> None:
        lo, hi = self.s.exposure_range_ms
        if not lo <= exposure_ms <= hi:
            raise LimitError(self.name, "set_exposure_ms", f"{exposure_ms} ms outside [{lo}, {hi}] ms")
        self._exposure_ms = float(exposure_ms)

    @property
    def gain_db(self) -> float:
        return self._gain_db

    def set_gain_db(self, gain_db: float) -> None:
        if not 0 <= gain_db <= self.s.max_gain_db:
            raise LimitError(self.name, "set_gain_db", f"{gain_db} dB outside [0, {self.s.max_gain_db}] dB")
        self._gain_db = float(gain_db)

    @property
    def frame_rate_hz(self) -> float:
        return self._frame_rate_hz

    def set_frame_rate_hz(self, frame_rate_hz: float) -> None:
        if not 0 < frame_rate_hz <= self.s.max_frame_rate_hz:
            raise LimitError(self.name, "set_frame_rate_hz",
                             f"{frame_rate_hz} Hz outside (0, {self.s.max_frame_rate_hz}] Hz")
        self._frame_rate_hz = float(frame_rate_hz)

    @property
    def bit_depth(self) -> int:
        return self.s.sensor.bit_depth

    @property
    def frames_skipped(self) -> int:
        return self._skipped

    # ----- acquisition -----------------------------------------------------------------------------------
    def view(self) -> View:
        r = self._roi
        return View(self.s.width_px, self.s.height_px, (r.x, r.y, r.width, r.height), self.pixel_size_um,
                    self.world.stage_xy_um(), self.world.focus_z_um(), self.s.rotation_deg)

    def _background(self) -> np.ndarray:
        if self._bg_cache is None or self._bg_cache[0] != self._roi:
            r = self._roi
            self._bg_cache = (r, background(self.sensor_shape, (r.x, r.y, r.width, r.height), self.s.sensor.vignetting,
                                             self.s.sensor.illumination_tilt))
        return self._bg_cache[1]

    def render_now(self) -> RawImage:
        """Render the world at the clock's current time (the end of the exposure)."""
        noise = draw_unit_noise(self._rng, (self._roi.height, self._roi.width))
        delta, truth = self.world.render(self.view(), self._exposure_ms / 1000.0, self.with_masks)
        intensity = self._background() * (1.0 + delta)
        pixels = expose(intensity, self._exposure_ms, self._gain_db, self.s.sensor, noise.result())
        self._frame_id += 1
        return RawImage(pixels, self._frame_id, self.clock.now(), self._exposure_ms,
                        (self._roi.x, self._roi.y), truth)

    def snap(self, timeout_s: float = 2.0) -> RawImage:
        period = 1.0 / self._frame_rate_hz
        now = self.clock.now()
        slot = max(self._next_slot, now)
        self._next_slot = slot + period
        self.clock.sleep(slot - now)
        try:
            image = self.render_now()
        except Exception as exc:  # rendering bugs surface as a camera fault, not a crash of the caller
            raise DeviceError(self.name, "snap", f"render failed: {exc}") from exc
        self.clock.sleep(self.s.latency_ms / 1000.0)
        return image

    def start_streaming(self) -> None:
        if self.clock.is_simulated:
            raise DeviceError(self.name, "start_streaming", "streaming needs a real-time clock; use snap() in lockstep")
        if self._stream is not None:
            return
        self._streaming.set()
        self._stream = threading.Thread(target=self._stream_loop, name=f"{self.name}-grab", daemon=True)
        self._stream.start()

    def _stream_loop(self) -> None:
        # A real camera exposes the next frame while the host reads this one: when the render runs past
        # the frame period, the next image starts at once (waiting for the next slot instead would halve
        # the rate whenever the CPU is busy); the periods it overran count as skipped frames.
        period = 1.0 / self._frame_rate_hz
        due = self.clock.now()
        while self._streaming.is_set():
            self.clock.sleep(max(0.0, due - self.clock.now()))
            try:
                self.image_ready.emit(self.render_now())
            except Exception:
                log.exception("%s: frame failed", self.name)
            due += period
            missed = int((self.clock.now() - due) // period)  # whole slots gone by meanwhile
            if missed > 0:
                self._skipped += missed
                due += missed * period

    def stop_streaming(self) -> None:
        self._streaming.clear()
        if self._stream is not None and self._stream is not threading.current_thread():
            self._stream.join(timeout=2.0)
        self._stream = None
