"""Sperm head anatomy and its optical transmission: shape classes, acrosome, post-acrosomal region,
nucleus density texture and vacuoles, projected along the optical axis at any roll.

The head is a flattened body: along its axis ``u`` (base at the neck, apex at the front) each cross-section
is an ellipse whose half-width ``B(u)`` draws the outline seen face-on and whose half-thickness ``C(u)``
thins toward the apex. Rolled by ``rho`` about its axis, the section projects to a half-width
``sqrt(B^2 cos^2 rho + C^2 sin^2 rho)`` with the path length ``2 B C / B_eff * sqrt(1 - (v/B_eff)^2)``
through it, so face-on a head is an oval and edge-on a thin rod, as real heads are.

The transmission of the head is ``t = exp(-ext + i phi)``: ``phi = k0 * sum(dn * path)`` (refractive-index
excess of each part over the medium) and ``ext`` the extinction, light scattered by sub-resolution
chromatin structure beyond the objective's aperture, proportional to path length. Both carry the nucleus'
density texture. The head is a strong object (``phi`` about one radian): it is imaged by
:class:`sim.optics.AbbeImager`.

What the numbers rest on (docs/sim.md): head sizes of live unstained normal sperm from MSOME (nucleus
4.75 +- 0.28 x 3.28 +- 0.20 um, Bartoov et al. 2002), the acrosome covering 40-70% of the head (WHO 2021),
abnormal shapes and their shares from strict-criteria morphology (amorphous most common), vacuoles from
MSOME (small ones common, a large one >4% of the head in about one cell in eight, as MHSMA's vacuole
labels), optical parameters calibrated on a part of the MHSMA heads (``benchmarks/sim_realism.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class HeadShape(str, Enum):
    """Head shape classes of strict-criteria sperm morphology (WHO 2021)."""

    NORMAL = "normal"
    TAPERED = "tapered"
    PYRIFORM = "pyriform"
    ROUND = "round"
    AMORPHOUS = "amorphous"
    LARGE = "large"
    SMALL = "small"


class HeadConfig(BaseModel):
    """How heads vary between cells: shapes, sizes, anatomy and optical parameters."""

    model_config = ConfigDict(extra="forbid")

    shape_mix: dict[HeadShape, float] = Field(
        default_factory=lambda: {HeadShape.NORMAL: 0.72, HeadShape.AMORPHOUS: 0.10, HeadShape.TAPERED: 0.06,
                                 HeadShape.PYRIFORM: 0.05, HeadShape.SMALL: 0.04, HeadShape.LARGE: 0.02,
                                 HeadShape.ROUND: 0.01},
        description="shares of head shapes (normal ~70%: MHSMA labels 27% of heads abnormal)")
    length_um: tuple[float, float] = Field((4.75, 0.28), description="normal head length, mean and s.d. (MSOME)")
    width_um: tuple[float, float] = Field((3.28, 0.20), description="normal head width, mean and s.d. (MSOME)")
    thickness_um: tuple[float, float] = Field((1.0, 0.1), description="thickness at the base, mean and s.d.")
    apex_thickness: float = Field(0.45, gt=0, le=1, description="thickness at the apex relative to the base")
    acrosome_fraction: tuple[float, float] = Field((0.40, 0.70), description="share of the head length, normal")
    small_acrosome_share: float = Field(0.25, ge=0, le=1, description="cells whose acrosome is small or absent")
    nucleus_dn: tuple[float, float] = Field((0.085, 0.010), description="index excess of the nucleus, mean and s.d.")
    acrosome_dn_ratio: float = Field(0.6, ge=0, le=2, description="acrosomal region relative to the nucleus")
    postacrosomal_dn_ratio: float = Field(1.15, ge=0, le=2, description="post-acrosomal region relative to the nucleus")
    extinction_per_um: tuple[float, float] = Field((0.15, 0.04), description="nucleus extinction per um, mean and s.d.")
    acrosome_extinction_ratio: float = Field(0.5, ge=0, le=2)
    texture: tuple[float, float] = Field((0.18, 0.06), description="relative s.d. of the chromatin density")
    texture_length_um: float = Field(0.35, gt=0, description="correlation length of the density texture")
    small_vacuoles_per_head: float = Field(0.8, ge=0, description="Poisson mean of vacuoles 0.15-0.35 um in radius")
    large_vacuole_share: float = Field(0.13, ge=0, le=1, description="cells with a vacuole of 0.4-0.7 um radius")
    vacuole_dn_ratio: float = Field(0.2, ge=0, le=1, description="index excess inside a vacuole, relative")

    @model_validator(mode="after")
    def _mix_sums(self) -> HeadConfig:
        if any(v < 0 for v in self.shape_mix.values()) or sum(self.shape_mix.values()) <= 0:
            raise ValueError("shape_mix needs non-negative weights with a positive sum")
        return self


@dataclass(frozen=True)
class Vacuole:
    u: float  # along the head, -1 base .. +1 apex
    v: float  # across the wide face, relative to the half-width
    w: float  # across the thickness, relative to the half-thickness
    radius_um: float


#: Samples of the body-frame profiles and texture along the head axis and across it.
_PROFILE_N = 65
_TEXTURE_SHAPE = (24, 40)  # (across, along)


@dataclass(frozen=True)
class HeadAnatomy:
    """One cell's head. Profiles are tabulated on ``u`` in [-1, 1] (base to apex)."""

    shape: HeadShape
    length_um: float
    width_um: float
    thickness_um: float
    half_width: np.ndarray  # B(u) / (width/2), (_PROFILE_N,)
    half_thickness: np.ndarray  # C(u) / (thickness/2)
    midline: np.ndarray  # centre of the section across the face, relative to width/2
    acrosome_u: float  # acrosome covers u > acrosome_u (in the middle of the face)
    nucleus_dn: float
    acrosome_dn: float
    postacrosomal_dn: float
    extinction_per_um: float
    acrosome_extinction_per_um: float
    texture: np.ndarray  # relative density fluctuation on the body frame, _TEXTURE_SHAPE, float32
    vacuoles: tuple[Vacuole, ...]
    vacuole_dn_ratio: float
    key: int  # identifies this head in image caches (drawn with it)

    def max_half_extent_um(self) -> float:
        return 0.5 * max(self.length_um, self.width_um * float(np.max(self.half_width + np.abs(self.midline))))


def _draw_shape(cfg: HeadConfig, rng: np.random.Generator) -> HeadShape:
    shapes = list(cfg.shape_mix)
    w = np.array([cfg.shape_mix[s] for s in shapes], dtype=float)
    return shapes[int(rng.choice(len(shapes), p=w / w.sum()))]


def sample_head(cfg: HeadConfig, rng: np.random.Generator, shape: HeadShape | None = None) -> HeadAnatomy:
    """Draw one head from the configured population (or of the given ``shape``)."""
    shape = shape or _draw_shape(cfg, rng)
    u = np.linspace(-1.0, 1.0, _PROFILE_N)
    length = rng.normal(*cfg.length_um)
    width = rng.normal(*cfg.width_um)
    taper, exponent, midline = rng.uniform(0.03, 0.12), 0.5, np.zeros_like(u)
    if shape == HeadShape.TAPERED:  # cigar-shaped: length/width > 2 (WHO), pointed ends
        width = rng.uniform(2.0, 2.5)
        length = rng.uniform(2.05, 2.5) * width
        exponent = 0.65
    elif shape == HeadShape.PYRIFORM:  # pear: broad front, tapering to a narrow base
        taper = rng.uniform(0.35, 0.55)
        width *= rng.uniform(1.0, 1.1)
    elif shape == HeadShape.ROUND:
        length = width = rng.uniform(3.2, 3.9)
        taper = 0.0
    elif shape == HeadShape.LARGE:
        s = rng.uniform(1.2, 1.35)
        length, width = length * s, width * s
    elif shape == HeadShape.SMALL:
        s = rng.uniform(0.72, 0.85)
        length, width = length * s, width * s
    base = np.clip(1.0 - u**2, 0.0, None) ** exponent * (1.0 + taper * u)
    if shape == HeadShape.AMORPHOUS:  # irregular outline, bent axis, uneven sides
        k = np.arange(1, 5)[:, None]
        base = base * (1.0 + (rng.normal(0, 0.10, (4, 1)) * np.cos(k * np.pi * (u + 1) / 2 + rng.uniform(0, 2 * np.pi, (4, 1)))).sum(0))
        midline = 0.15 * rng.normal() * np.sin(np.pi * (u + 1) / 2) + 0.08 * rng.normal() * np.sin(np.pi * (u + 1))
        length *= rng.uniform(0.85, 1.15)
        width *= rng.uniform(0.85, 1.2)
    half_width = np.clip(base / max(float(base.max()), 1e-6), 0.0, None)
    thick_profile = cfg.apex_thickness + (1.0 - cfg.apex_thickness) * (1.0 - u) / 2
    half_thickness = thick_profile * np.clip(1.0 - u**2, 0.0, None) ** 0.25
    thickness = max(rng.normal(*cfg.thickness_um), 0.5) * np.sqrt(width / cfg.width_um[0])
    if rng.random() < cfg.small_acrosome_share:
        acro_fraction = rng.uniform(0.0, 0.4)
    else:
        acro_fraction = rng.uniform(*cfg.acrosome_fraction)
    acrosome_u = 1.0 - 2.0 * acro_fraction
    dn = max(rng.normal(*cfg.nucleus_dn), 0.02)
    ext = max(rng.normal(*cfg.extinction_per_um), 0.0)
    # density texture: smoothed white noise on the body frame (correlation length in um)
    tex = rng.standard_normal(_TEXTURE_SHAPE).astype(np.float32)
    sigma_px = cfg.texture_length_um / (length / _TEXTURE_SHAPE[1])
    tex = cv2.GaussianBlur(tex, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    tex *= np.float32(max(rng.normal(*cfg.texture), 0.0) / max(float(tex.std()), 1e-6))
    vacuoles = []
    for _ in range(rng.poisson(cfg.small_vacuoles_per_head)):
        vacuoles.append(Vacuole(rng.uniform(-0.3, 0.7), rng.uniform(-0.6, 0.6), rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6),
                                rng.uniform(0.15, 0.35)))
    if rng.random() < cfg.large_vacuole_share:
        vacuoles.append(Vacuole(rng.uniform(-0.2, 0.6), rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3),
                                rng.uniform(0.4, 0.7)))
    return HeadAnatomy(
        shape=shape, length_um=float(length), width_um=float(width), thickness_um=float(thickness),
        half_width=half_width.astype(np.float32), half_thickness=half_thickness.astype(np.float32),
        midline=midline.astype(np.float32), acrosome_u=float(acrosome_u), nucleus_dn=float(dn),
        acrosome_dn=float(dn * cfg.acrosome_dn_ratio), postacrosomal_dn=float(dn * cfg.postacrosomal_dn_ratio),
        extinction_per_um=float(ext), acrosome_extinction_per_um=float(ext * cfg.acrosome_extinction_ratio),
        texture=tex, vacuoles=tuple(vacuoles), vacuole_dn_ratio=cfg.vacuole_dn_ratio,
        key=int(rng.integers(2**62)),
    )


def head_transmission(head: HeadAnatomy, roll_rad: float, length_scale: float, angle_rad: float,
                      centre_px: tuple[float, float], shape: tuple[int, int], pixel_um: float,
                      k0_per_um: float) -> np.ndarray:
    """``t - 1`` (complex64, ``shape``) of the head centred at ``centre_px`` on a grid of ``pixel_um``.

    ``length_scale`` foreshortens the head's length (cosine of its pitch); ``angle_rad`` is its in-plane
    direction (base -> apex) in pixel axes; ``roll_rad`` its roll about its axis (0: face-on).
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = (xx - np.float32(centre_px[0])) * np.float32(pixel_um)
    dy = (yy - np.float32(centre_px[1])) * np.float32(pixel_um)
    c, s = np.float32(np.cos(angle_rad)), np.float32(np.sin(angle_rad))
    half_len = 0.5 * head.length_um * max(length_scale, 0.3)
    u = (dx * c + dy * s) / np.float32(half_len)  # -1 base .. +1 apex
    lat = -dx * s + dy * c  # um across the head in the image
    n = _PROFILE_N - 1
    ui = np.clip((u + 1.0) * 0.5 * n, 0, n).astype(np.float32)
    half_w_um = 0.5 * head.width_um * np.interp(ui, np.arange(n + 1), head.half_width)
    half_t_um = 0.5 * head.thickness_um * np.interp(ui, np.arange(n + 1), head.half_thickness)
    mid_um = 0.5 * head.width_um * np.interp(ui, np.arange(n + 1), head.midline)
    cr, sr = abs(float(np.cos(roll_rad))), abs(float(np.sin(roll_rad)))
    b_eff = np.sqrt((half_w_um * cr) ** 2 + (half_t_um * sr) ** 2) + np.float32(1e-6)
    v = (lat - mid_um * cr) / b_eff  # relative position across the projected section
    inside = (np.abs(u) < 1.0) & (np.abs(v) < 1.0)
    path = np.where(inside, 2 * half_w_um * half_t_um / b_eff * np.sqrt(np.clip(1.0 - v**2, 0.0, None)), 0.0)
    # region of each pixel: acrosome in front of a boundary curved toward the apex at the sides
    boundary = head.acrosome_u + 0.25 * v**2
    acro = 1.0 / (1.0 + np.exp(-np.clip((u - boundary) / 0.06, -30.0, 30.0)))
    post = (1.0 - acro) * (u > -0.85)
    dn = head.nucleus_dn + (head.acrosome_dn - head.nucleus_dn) * acro \
        + (head.postacrosomal_dn - head.nucleus_dn) * post * (1 - acro)
    ext = head.extinction_per_um + (head.acrosome_extinction_per_um - head.extinction_per_um) * acro
    # chromatin texture, sampled on the body frame (it rolls and turns with the head)
    th, tw = head.texture.shape
    map_x = ((u + 1.0) * 0.5 * (tw - 1)).astype(np.float32)
    map_y = ((np.clip(v, -1, 1) + 1.0) * 0.5 * (th - 1)).astype(np.float32)
    tex = cv2.remap(head.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    density = 1.0 + tex
    opd = dn * path * density
    loss = ext * path * density
    for vac in head.vacuoles:  # a vacuole replaces chromatin by less dense material along its chord
        centre_u = vac.u
        centre_v_um = (vac.v * cr * 0.5 * head.width_um * float(np.interp((vac.u + 1) * 0.5 * n, np.arange(n + 1), head.half_width))
                       + vac.w * sr * 0.5 * head.thickness_um)
        du_um = (u - centre_u) * np.float32(half_len)
        dv_um = lat - np.float32(centre_v_um)
        r2 = vac.radius_um**2 - du_um**2 - dv_um**2
        chord = np.where(inside & (r2 > 0), 2 * np.sqrt(np.clip(r2, 0.0, None)), 0.0)
        chord = np.minimum(chord, path)
        opd -= (1.0 - head.vacuole_dn_ratio) * head.nucleus_dn * chord
        loss -= (1.0 - head.vacuole_dn_ratio) * head.extinction_per_um * chord
    amplitude = np.exp(-np.clip(loss, 0.0, None))
    phase = np.float32(k0_per_um) * opd
    return (amplitude * np.exp(1j * phase) - 1.0).astype(np.complex64)
