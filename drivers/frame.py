"""The unit of data that flows from the camera to perception: pixels plus where and when they were taken."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.errors import FrameError

_PIXEL_DTYPES = (np.uint8, np.uint16, np.float32)


@dataclass(frozen=True, eq=False)
class RawImage:
    """What a camera delivers: pixels, the camera's frame counter and the capture time."""

    pixels: np.ndarray
    frame_id: int
    capture_time_s: float
    exposure_ms: float
    roi_offset_px: tuple[int, int] = (0, 0)
    truth: Any = None  # simulated cameras attach the scene's ground truth here


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera image stamped with the rig state at capture.

    ``pixel_size_um`` is at the sample (sensor pixel / magnification). ``stage_xy_um`` and
    ``focus_z_um`` are read at capture so that image coordinates can be turned into stage coordinates.
    ``roi_offset_px`` is the (x, y) of the image's top-left pixel on the full sensor.
    ``truth`` carries the simulator's ground truth and is ``None`` on real hardware.
    """

    pixels: np.ndarray
    frame_id: int
    capture_time_s: float
    pixel_size_um: float
    stage_xy_um: tuple[float, float]
    focus_z_um: float
    exposure_ms: float
    roi_offset_px: tuple[int, int] = (0, 0)
    truth: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        validate_pixels(self.pixels)
        if not (np.isfinite(self.pixel_size_um) and self.pixel_size_um > 0):
            raise FrameError(f"frame {self.frame_id}: pixel_size_um must be > 0, got {self.pixel_size_um}")
        if not np.isfinite(self.capture_time_s):
            raise FrameError(f"frame {self.frame_id}: capture_time_s is not finite")

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape  # type: ignore[return-value]


def full_scale(pixels: np.ndarray) -> float:
    """Full-scale value of the pixel type (255 for Mono8, 65535 for 16-bit containers, 1.0 float)."""
    if pixels.dtype == np.float32:
        return 1.0
    return float(np.iinfo(pixels.dtype).max)


def validate_pixels(pixels: Any) -> None:
    """Raise :class:`FrameError` naming the problem if ``pixels`` is not a 2-D grey image."""
    if not isinstance(pixels, np.ndarray):
        raise FrameError(f"pixels must be a numpy array, got {type(pixels).__name__}")
    if pixels.ndim != 2:
        raise FrameError(f"pixels must be 2-D (grey), got shape {pixels.shape}")
    if pixels.shape[0] < 8 or pixels.shape[1] < 8:
        raise FrameError(f"image too small: {pixels.shape}")
    if pixels.dtype not in _PIXEL_DTYPES:
        raise FrameError(f"pixel dtype must be uint8, uint16 or float32, got {pixels.dtype}")
    if pixels.dtype == np.float32 and not np.isfinite(pixels).all():
        raise FrameError("pixels contain NaN or infinity")
