"""Domain randomisation for the head segmentation's training images: the twin's scenes imaged the way
real rigs differ.

The shipped XY network must find heads in video from microscopes it never saw. Rigs differ in
magnification (10x-40x) and numerical aperture, camera pixel size, contrast method (bright field; phase
contrast, whose objects carry a halo of opposite sign), lamp power and uneven illumination, noise, video
compression and interlacing, and in what else lies in the sample (round debris and round cells, specks,
dense fields). Each tile draws one :class:`RigStyle` and one sample: the cells and spheres are imaged
through the twin's weak-object optics at that objective (so defocus blur, depth of field and rings of
out-of-focus debris follow the physics); what the optics model does not cover (phase-contrast halos,
the camera and video chain) is applied to the image afterwards.

What each range rests on: heads 4.0-5.0 x 2.5-3.2 um (WHO 2021 normal forms); clinical videos at 0.38-0.42
um/px with 15-70 heads in a 250 x 190 um field (the development video: 66 heads in 256 x 154 um); debris
in semen from 0.2 um specks to round cells of 5-12 um; head contrast from nearly invisible to the
development video's -0.75 (its heads absorb at low NA); JPEG quality 15-90 (MPEG-4 clinical recordings).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drivers.objective import Objective
from sim.config import Morphology
from sim.scene import Debris, Scene

#: Objectives a rig may use: (magnification, NA, camera pixel sizes at the sample in um). The pixel sizes are
#: those of common sensors (3.45-9.9 um pixels, with or without binning) behind each objective.
OBJECTIVES: tuple[tuple[float, float, tuple[float, ...]], ...] = (
    (10.0, 0.25, (0.37, 0.50, 0.65)),
    (20.0, 0.40, (0.18, 0.25, 0.33, 0.42)),
    (40.0, 0.65, (0.1465, 0.20, 0.29)),
)


@dataclass(frozen=True)
class RigStyle:
    """One imaging set-up and camera chain, drawn per training tile."""

    magnification: float
    na: float
    camera_um_per_px: float
    phase_halo: float  # gain of the halo of opposite sign (0: plain bright field)
    halo_sigma_um: float
    contrast_gain: float
    inverted: bool  # objects brighter than the background (defocused bright field, negative phase contrast)
    brightness: float  # background level as a fraction of full scale
    vignetting: float
    gradient: tuple[float, float]
    noise: float  # read-noise-like sigma, fraction of full scale
    shot: float  # shot-noise-like sigma at full scale
    gamma: float
    blur_px: float  # camera/video-chain blur (Gaussian sigma, camera pixels)
    jpeg_quality: int | None
    interlaced: bool
    exposure_ms: float
    reference: bool = False  # the twin's own rig, cells as the twin draws them

    def objective(self) -> Objective:
        return Objective(magnification=self.magnification, na=self.na, condenser_na=round(0.75 * self.na, 3))

    @property
    def sensor_pixel_um(self) -> float:
        return self.camera_um_per_px * self.magnification

    @property
    def depth_of_field_um(self) -> float:
        return self.objective().depth_of_field_um(self.sensor_pixel_um)


#: Share of tiles imaged exactly as the twin's own rig images them (the reference rig's objective and camera,
#: the twin's cell appearance): the twin is one rig among those the network must handle, and the one its
#: closed-loop trials run on.
REFERENCE_SHARE = 0.25


def reference_style(rng: np.random.Generator) -> RigStyle:
    """The twin's reference rig: 40x NA 0.65 onto 5.86 um pixels, bright field, the IMX249's shot noise
    (32 ke- full well), raw Mono8 frames."""
    return RigStyle(magnification=40.0, na=0.65, camera_um_per_px=0.1465, phase_halo=0.0, halo_sigma_um=1.0,
                    contrast_gain=1.0, inverted=False, brightness=float(rng.uniform(0.4, 0.7)), vignetting=0.12,
                    gradient=(0.02, 0.0), noise=0.0003, shot=float(1 / np.sqrt(32000.0)), gamma=1.0, blur_px=0.0,
                    jpeg_quality=None, interlaced=False, exposure_ms=float(rng.uniform(2.0, 6.0)), reference=True)


def sample_style(rng: np.random.Generator) -> RigStyle:
    if rng.random() < REFERENCE_SHARE:
        return reference_style(rng)
    mag, na, pixels = OBJECTIVES[int(rng.integers(len(OBJECTIVES)))]
    phase = rng.random() < 0.35
    return RigStyle(
        magnification=mag, na=na, camera_um_per_px=float(rng.choice(pixels)),
        phase_halo=float(rng.uniform(0.5, 2.0)) if phase else float(rng.uniform(0.0, 0.3)),
        halo_sigma_um=float(rng.uniform(0.8, 3.0)),
        contrast_gain=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
        inverted=bool(rng.random() < 0.1),
        brightness=float(rng.uniform(0.2, 0.85)),
        vignetting=float(rng.uniform(0.0, 0.6)),
        gradient=(float(rng.normal(0, 0.15)), float(rng.normal(0, 0.15))),
        noise=float(rng.uniform(0.002, 0.03)),
        shot=float(rng.uniform(0.0, 0.03)),
        gamma=float(rng.uniform(0.7, 1.4)),
        blur_px=float(rng.choice([0.0, rng.uniform(0.3, 1.5)])),
        jpeg_quality=int(rng.integers(15, 91)) if rng.random() < 0.6 else None,
        interlaced=bool(rng.random() < 0.12),
        exposure_ms=float(np.exp(rng.uniform(np.log(1.0), np.log(30.0)))),
    )


def sample_morphology(rng: np.random.Generator) -> Morphology:
    """Cell appearance varies between samples and optics: head absorption from nearly none (a phase object,
    invisible in focus) to the development video's dark heads; tails from faint to clear."""
    nucleus = float(rng.uniform(0.05, 0.12))
    return Morphology(
        head_length_um=float(rng.uniform(4.0, 5.0)), head_width_um=float(rng.uniform(2.5, 3.2)),
        nucleus_dn=nucleus, acrosome_dn=nucleus * float(rng.uniform(0.5, 0.85)),
        tail_dn=float(rng.uniform(0.01, 0.06)),
        absorption_per_um=float(np.exp(rng.uniform(np.log(0.04), np.log(0.6)))),
    )


def randomise_debris(scene: Scene, rng: np.random.Generator, half_um: float, focus_z_um: float,
                     dof_um: float, k0: float) -> None:
    """Replace the scene's debris: specks, head-sized round particles and round cells, most near the
    focal plane. The phase through a sphere is kept at or below ~1.5 rad (the weak-object model's reach)."""
    area = (2 * half_um) ** 2
    n = int(rng.poisson(area * np.exp(rng.uniform(np.log(1 / 2500), np.log(1 / 150)))))
    kind = rng.random(n)
    radius = np.where(kind < 0.55, rng.uniform(0.2, 0.8, n),
                      np.where(kind < 0.9, np.exp(rng.uniform(np.log(0.8), np.log(2.5), n)), rng.uniform(2.5, 6.0, n)))
    dn = np.minimum(rng.uniform(0.005, 0.06, n), 1.5 / (k0 * 2 * radius))
    spread = max(1.0, 0.7 * dof_um)
    z = np.where(rng.random(n) < 0.8, focus_z_um + rng.normal(0, spread, n), focus_z_um + rng.uniform(-15, 15, n))
    scene.debris = Debris(
        pos_um=np.stack([rng.uniform(-half_um, half_um, n), rng.uniform(-half_um, half_um, n),
                         np.maximum(z, radius)], axis=1),
        radius_um=radius, dn=dn, absorption=np.exp(rng.uniform(np.log(0.005), np.log(0.15), n)))


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    h, w = shape
    coarse = rng.normal(0.0, amplitude, (4, 4)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def illumination(shape: tuple[int, int], style: RigStyle, rng: np.random.Generator) -> np.ndarray:
    """Background: lamp level x vignetting about an off-centre axis x a tilt x slow blotches."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    span = float(max(h, w))
    cx, cy = rng.uniform(-0.5, 1.5) * w, rng.uniform(-0.5, 1.5) * h
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (1.5 * span) ** 2
    tilt = 1 + style.gradient[0] * (xx / span - 0.5) + style.gradient[1] * (yy / span - 0.5)
    field = (1 - style.vignetting * np.clip(r2, 0, 1)) * tilt * (1 + _smooth_field(shape, rng, 0.04))
    return np.clip(field, 0.15, 2.0) * style.brightness


def camera_image(delta: np.ndarray, style: RigStyle, rng: np.random.Generator) -> np.ndarray:
    """The optics' relative modulation ``delta`` (``I = B (1 + delta)``) -> an 8-bit frame as the rig's
    camera and video chain would record it."""
    d = delta.astype(np.float32) * style.contrast_gain
    if style.phase_halo > 0:
        sigma = style.halo_sigma_um / style.camera_um_per_px
        d = d + style.phase_halo * (d - cv2.GaussianBlur(d, (0, 0), sigma))
    if style.inverted:
        d = -d
    img = illumination(d.shape, style, rng) * (1 + np.clip(d, -0.95, 3.0))
    sigma = np.sqrt(style.noise**2 + style.shot**2 * np.clip(img, 0, None))
    img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    if style.blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), style.blur_px)
    img = np.clip(img, 0, 1) ** style.gamma
    out = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    if style.interlaced:  # the odd field is a moment later: a pixel's shift, and its own noise
        out[1::2] = np.roll(out[1::2], int(rng.choice([-1, 1])), axis=1)
    if style.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, style.jpeg_quality])
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out
