"""Camera and illumination: Koehler background with vignetting and uneven illumination, shot and read
noise, gain, bit depth, and the lossy compression recordings are often saved with."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.units import Ms
from sim import workers


class SensorModel(BaseModel):
    """Reference sensor: Sony IMX249 in the Basler acA1920-40u."""

    model_config = ConfigDict(extra="forbid")

    full_well_e: float = Field(32000.0, gt=0)
    read_noise_e: float = Field(7.0, ge=0)
    dark_offset_adu: float = Field(2.0, ge=0)
    illumination_fraction: float = Field(0.55, gt=0, le=20, description="background / full well at reference exposure")
    reference_exposure_ms: Ms = Field(5.0, gt=0)
    vignetting: float = Field(0.12, ge=0, lt=1, description="relative fall-off at the sensor corners")
    illumination_tilt: float = Field(0.02, ge=-0.5, le=0.5, description="linear change of the background across"
                                     " the sensor's width, per half-diagonal (a decentred lamp or condenser)")
    pixel_format: Literal["Mono8", "Mono12"] = "Mono8"

    @property
    def bit_depth(self) -> int:
        return 8 if self.pixel_format == "Mono8" else 12


def background(sensor_shape: tuple[int, int], roi: tuple[int, int, int, int], vignetting: float,
               tilt: float = 0.02) -> np.ndarray:
    """Relative Koehler illumination over the ROI (1 at the optical axis): a radial fall-off and a tilt."""
    h, w = sensor_shape
    x0, y0, rw, rh = roi
    yy = (np.arange(y0, y0 + rh, dtype=np.float32) - h / 2) / (0.5 * np.hypot(w, h))
    xx = (np.arange(x0, x0 + rw, dtype=np.float32) - w / 2) / (0.5 * np.hypot(w, h))
    r2 = yy[:, None] ** 2 + xx[None, :] ** 2
    return (1.0 - vignetting * r2 + tilt * xx[None, :]).astype(np.float32)


def draw_unit_noise(rng: np.random.Generator, shape: tuple[int, int]) -> Future[np.ndarray]:
    """Standard normal samples for the next frame's noise, drawn on a worker thread while the frame renders.

    At 640x480 the draw takes about 3 ms (a tenth of a frame at video rate) and numpy releases the GIL
    for it. Jobs run in order, so each camera's stream stays deterministic.
    """
    return workers.submit(_unit_normal, rng, shape)


def _unit_normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def expose(relative_intensity: np.ndarray, exposure_ms: float, gain_db: float, sensor: SensorModel,
           unit_noise: np.ndarray) -> np.ndarray:
    """Photo-electrons with shot and read noise, converted to ADU and clipped to the pixel format.

    ``unit_noise`` holds standard normal samples of the image's shape (shot noise is Gaussian at these
    counts). Every step works in place on one float32 image: at video rate the temporaries cost more than
    the maths.
    """
    scale = sensor.illumination_fraction * sensor.full_well_e * exposure_ms / sensor.reference_exposure_ms
    electrons = np.maximum(relative_intensity, np.float32(0.0), dtype=np.float32)
    electrons *= np.float32(scale)
    sigma = electrons + np.float32(sensor.read_noise_e**2)
    np.sqrt(sigma, out=sigma)
    if unit_noise.shape != electrons.shape:
        raise ValueError(f"unit_noise has shape {unit_noise.shape}, the image {electrons.shape}")
    sigma *= unit_noise
    electrons += sigma
    np.clip(electrons, 0.0, sensor.full_well_e, out=electrons)
    max_adu = (1 << sensor.bit_depth) - 1
    electrons *= np.float32(max_adu / sensor.full_well_e * 10 ** (gain_db / 20))
    electrons += np.float32(sensor.dark_offset_adu)
    np.rint(electrons, out=electrons)
    np.clip(electrons, 0, max_adu, out=electrons)
    return electrons.astype(np.uint8 if sensor.bit_depth == 8 else np.uint16)


def uneven_illumination(shape: tuple[int, int], rng: np.random.Generator, gradient: float = 0.04,
                        blobs: float = 0.02, blob_px: float = 40.0) -> np.ndarray:
    """Relative illumination of one recording (mean 1): a linear gradient across the image (an off-centre
    lamp or field diaphragm, up to ``gradient`` from side to side) and a few soft blobs (dust and
    residue in the condenser and on the dish, out of focus, up to ``blobs``). Real Koehler fields at 40x
    vary by a few per cent; low-magnification recordings far more."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx / max(w - 1, 1) - 0.5) * np.cos(ang) + (yy / max(h - 1, 1) - 0.5) * np.sin(ang))
    field = 1.0 + rng.uniform(0.0, gradient) * ramp
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(-0.2 * w, 1.2 * w), rng.uniform(-0.2 * h, 1.2 * h)
        r = blob_px * rng.uniform(0.5, 2.0)
        field += rng.uniform(-blobs, blobs) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    return (field / field.mean()).astype(np.float32)


def compress_jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """The image after a JPEG round trip at ``quality`` (what a recording saved as JPEG holds)."""
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def demosaiced_unit_noise(rng: np.random.Generator, shape: tuple[int, int], neighbour_weight: float) -> np.ndarray:
    """Unit-variance noise as a colour (Bayer) camera's grey image carries it: demosaicing interpolates
    each pixel from its neighbours, so neighbouring pixels share noise. ``neighbour_weight`` (0: a mono
    sensor, white noise) weights the two neighbours in each direction of a separable smoothing; 0.25 gives
    a lag-1 correlation of 0.44 (MHSMA's backgrounds: 0.35)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    if neighbour_weight <= 0:
        return white
    k = np.array([neighbour_weight, 1.0, neighbour_weight], np.float32)
    k /= np.sqrt(np.sum(k**2))
    return cv2.sepFilter2D(white, -1, k, k, borderType=cv2.BORDER_REFLECT)
