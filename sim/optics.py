"""Bright-field image formation of thin, weakly scattering objects (partially coherent WOTF model).

A thin object transmits ``t = exp(-a + i*phi) ~ 1 - a + i*phi`` (absorption ``a``, phase ``phi``).
Under Koehler illumination with a disc source of radius ``NA_c / lambda`` and an aberration-free pupil of
radius ``NA / lambda`` carrying a defocus phase, the linearised image is (Streibl 1984)

    I(r) / B = 1 - (a * h_A)(r) + (phi * h_P)(r),

with transfer functions ``H_A = C(f) + C*(-f)`` and ``H_P = i (C(f) - C*(-f))``, where
``C(f) = sum_s S(s) P*(s) P(f + s)`` is the source-weighted overlap of shifted pupils and ``B = C(0)``.
Source and pupil are rotationally symmetric, so ``C`` depends on ``|f|`` only: ``H_A = 2 Re C`` and
``H_P = -2 Im C``. At focus the pupil is real and ``H_P = 0`` (a pure phase object is invisible); the
defocus phase is odd in z, so ``H_P`` and the phase contrast change sign across focus.

Depth convention (the one every depth label, dataset folder and controller reading uses): ``z_um`` is the
object's height above the focal plane, +z pointing up, away from the dish floor. What the optics sees is
the defocus along the direction the light travels, ``light_sign * z_um``: in an upright microscope the
light goes up (condenser below, objective above), so an object above the focal plane lies downstream of
it; in an inverted microscope (the reference rig, and ICSI rigs) the light goes down and the same object
lies upstream, so its phase contrast has the opposite sign. Defocus is measured in the immersion medium of
the objective (for a dry objective: objective travel). The focal shift into the aqueous sample is not
modelled.

Strong objects (a sperm head delays light by about a radian) break the linearisation: their image is
computed by Abbe's method in :class:`AbbeImager`, the incoherent sum over condenser points of coherent
images, which keeps every order of ``t = exp(-a + i phi)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import scipy.fft

from drivers.errors import ConfigError
from drivers.objective import Objective

#: Defocus kernels are cached at this step; elements within one step share a kernel.
Z_STEP_UM = 0.1
#: Objects further from focus than this are not rendered (their blur spreads over > 30 um).
MAX_DEFOCUS_UM = 30.0

#: Microscope geometry: where the objective sits relative to the sample.
Microscope = Literal["inverted", "upright"]


def light_sign(microscope: Microscope) -> int:
    """+1 when the illumination travels toward +z (upright: condenser below, objective above), -1 when it
    travels toward -z (inverted: condenser above, objective below)."""
    if microscope == "upright":
        return 1
    if microscope == "inverted":
        return -1
    raise ConfigError(f"microscope must be 'inverted' or 'upright', got {microscope!r}")


@dataclass(frozen=True)
class KernelPair:
    """Real-space point responses for absorption and phase at one defocus (odd size, centred)."""

    z_um: float
    absorption: np.ndarray  # h_A, float32; sums to 2 (uniform absorption a gives 1 - 2a)
    phase: np.ndarray  # h_P, float32; sums to 0

    @property
    def radius_px(self) -> int:
        return self.absorption.shape[0] // 2


class WeakObjectOptics:
    """Computes and caches defocus kernels for one objective, one sampling (pixel size at sample) and one
    microscope geometry. ``kernels(z_um)`` takes the object's height above the focal plane."""

    def __init__(self, objective: Objective, pixel_size_um: float, source_samples: int = 24,
                 microscope: Microscope = "inverted") -> None:
        if not pixel_size_um > 0:
            raise ConfigError(f"pixel_size_um must be > 0, got {pixel_size_um}")
        if objective.condenser_na > objective.na:
            raise ConfigError(
                f"objective.condenser_na ({objective.condenser_na}) must not exceed objective.na ({objective.na})"
            )
        if objective.na >= objective.immersion_index:
            raise ConfigError(f"objective.na ({objective.na}) must be below immersion_index ({objective.immersion_index})")
        self.objective = objective
        self.pixel_size_um = pixel_size_um
        self.microscope = microscope
        self.light_sign = light_sign(microscope)
        self._lock = threading.Lock()
        lam, n = objective.wavelength_um, objective.immersion_index
        self._f_pupil = objective.na / lam
        self._f_source = objective.condenser_na / lam
        self._k_n = n / lam
        # Source points on a polar grid over the condenser disc, equal-area weights.
        rings = source_samples
        pts = []
        for i in range(rings):
            r = self._f_source * np.sqrt((i + 0.5) / rings)
            m = max(1, int(round(2 * np.pi * (i + 0.5))))
            ang = (np.arange(m) + 0.5 * (i % 2)) * 2 * np.pi / m
            pts.append(np.stack([r * np.cos(ang), r * np.sin(ang), np.full(m, 1.0 / (rings * m))], axis=1))
        self._source = np.concatenate(pts)  # (S, 3): fx, fy, weight
        self._source_geometry = self._pupil_geometry(self._source[:, 0], self._source[:, 1])
        self._shifted_geometry: tuple[bytes, tuple[np.ndarray, np.ndarray]] | None = None

    def _pupil_geometry(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the pupil passes light, and its defocus phase per um of defocus there (rad/um, float32)."""
        f2 = fx**2 + fy**2
        kz = np.sqrt(np.maximum(self._k_n**2 - f2, 0.0))
        # Propagation from the object to the focal plane: an object a distance delta downstream of the
        # focal plane (along the light) is back-propagated by delta.
        return (f2 <= self._f_pupil**2).astype(np.float32), (-2 * np.pi * (kz - self._k_n)).astype(np.float32)

    @staticmethod
    def _pupil(geometry: tuple[np.ndarray, np.ndarray], z_um: float) -> tuple[np.ndarray, np.ndarray]:
        """Real and imaginary parts of the pupil at defocus ``z_um``.

        Real arithmetic in single precision: the phase stays below ~100 rad, the kernels are float32
        anyway, and numpy's complex exponential took half of a campaign worker's start.
        """
        inside, phase_per_um = geometry
        phase = phase_per_um * np.float32(z_um)
        return np.cos(phase) * inside, np.sin(phase) * inside

    def radial_transfer(self, z_um: float, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H_A(|f|), H_P(|f|) normalised by the background B, on radial frequencies ``f`` (1/um), for an
        object ``z_um`` downstream of the focal plane along the light (not a height: see ``kernels``)."""
        sx, sy, w = self._source[:, 0], self._source[:, 1], self._source[:, 2]
        with self._lock:
            key = f.tobytes()
            if self._shifted_geometry is None or self._shifted_geometry[0] != key:
                # Shift along x only: C depends on |f| alone. The kernels all use one radial grid.
                self._shifted_geometry = (key, self._pupil_geometry(f[:, None] + sx[None, :],
                                                                    np.broadcast_to(sy, (f.size, sx.size))))
            shifted_geometry = self._shifted_geometry[1]
        re_s, im_s = self._pupil(self._source_geometry, z_um)  # (S,)
        re_f, im_f = self._pupil(shifted_geometry, z_um)  # (F, S)
        # C = sum_s w P(f + s) conj P(s), in real and imaginary parts
        a, b_ = (re_s * w).astype(np.float32), (im_s * w).astype(np.float32)
        c_re = re_f @ a + im_f @ b_
        c_im = im_f @ a - re_f @ b_
        b = float(np.sum(w * (re_s**2 + im_s**2)))
        return 2 * c_re / b, -2 * c_im / b

    def blur_radius_um(self, z_um: float) -> float:
        """Geometric radius of the defocus blur (marginal ray), used to size kernels."""
        na, n = self.objective.na, self.objective.immersion_index
        return abs(z_um) * na / np.sqrt(n**2 - na**2)

    def kernels(self, z_um: float) -> KernelPair:
        """Kernels for an object ``z_um`` above the focal plane, quantised to :data:`Z_STEP_UM` and cached."""
        key = int(round(float(np.clip(z_um, -MAX_DEFOCUS_UM, MAX_DEFOCUS_UM)) / Z_STEP_UM))
        return self._kernels_cached(key)

    @lru_cache(maxsize=1024)  # noqa: B019 - one instance per optics, kept for the process
    def _kernels_cached(self, key: int) -> KernelPair:
        z = key * Z_STEP_UM
        if key * self.light_sign < 0:
            # The defocus phase is odd in the defocus along the light, so C(f; -d) = conj C(f; d): h_A is
            # even in it and h_P odd. Upstream of focus = the mirror of downstream.
            k = self._kernels_cached(-key)
            return KernelPair(z_um=z, absorption=k.absorption, phase=-k.phase)
        p = self.pixel_size_um
        # Half-size: blur disc plus ~4 resolution lengths for the diffraction ringing.
        res = self.objective.wavelength_um / (2 * self.objective.na)
        half = int(np.ceil((self.blur_radius_um(z) + 4 * res) / p))
        size = 2 * half + 1
        grid = 1 << int(np.ceil(np.log2(2 * size)))
        freqs = np.fft.fftfreq(grid, d=p)
        fx, fy = np.meshgrid(freqs, freqs, indexing="xy")
        fr = np.hypot(fx, fy)
        f_max = self._f_pupil + self._f_source
        radial = np.linspace(0.0, f_max, 256)
        ha_r, hp_r = self.radial_transfer(abs(z), radial)
        ha = np.interp(fr, radial, ha_r, right=0.0)
        hp = np.interp(fr, radial, hp_r, right=0.0)
        ka = np.fft.fftshift(np.fft.ifft2(ha).real)
        kp = np.fft.fftshift(np.fft.ifft2(hp).real)
        c = grid // 2
        crop = (slice(c - half, c + half + 1), slice(c - half, c + half + 1))
        ka, kp = ka[crop], kp[crop]
        # Re-impose the DC terms lost to cropping: uniform absorption a -> 1 - 2a, uniform phase -> no change.
        ka = ka * (2.0 / ka.sum())
        kp = kp - kp.mean()
        return KernelPair(z_um=z, absorption=ka.astype(np.float32), phase=kp.astype(np.float32))


@lru_cache(maxsize=16)
def shared_optics(objective: Objective, pixel_size_um: float, microscope: Microscope = "inverted") -> WeakObjectOptics:
    """One optics (and kernel cache) per objective, sampling and geometry per process: every simulated rig
    a campaign builds reuses the kernels instead of recomputing them (about 2 s per rig)."""
    return WeakObjectOptics(objective, round(pixel_size_um, 9), microscope=microscope)


class DepthBasis:
    """Low-rank expansion of the defocus kernels over a band of depths: h(r; z) ~ sum_k c_k(z) B_k(r).

    The kernels of a thin filament vary smoothly with z, so a few basis kernels (from an SVD over the
    band) image samples at any depth in the band with one convolution per basis instead of per depth.
    The band is ``inner_um <= |z| <= band_um``: both sides of focus share the basis.
    """

    def __init__(self, optics: WeakObjectOptics, absorption_per_phase: float, band_um: float = 3.0,
                 rank: int = 5, inner_um: float = 0.0) -> None:
        if not 0.0 <= inner_um < band_um:
            raise ConfigError(f"DepthBasis needs 0 <= inner_um < band_um, got {inner_um} and {band_um}")
        self.band_um = band_um
        self.inner_um = inner_um
        side = np.arange(inner_um, band_um + 1e-9, Z_STEP_UM)
        self.z_grid = np.unique(np.concatenate([-side[::-1], side]))
        radius = optics.kernels(band_um).radius_px
        rows = []
        for z in self.z_grid:
            k = optics.kernels(float(z))
            pad = radius - k.radius_px
            rows.append(np.pad(k.phase - absorption_per_phase * k.absorption, pad).ravel())
        u, s, vt = np.linalg.svd(np.asarray(rows, dtype=np.float64), full_matrices=False)
        size = 2 * radius + 1
        self.radius_px = radius
        self.kernels = [vt[k].reshape(size, size).astype(np.float32) for k in range(rank)]
        self.coeffs = (u[:, :rank] * s[:rank]).T  # (rank, len(z_grid))

    def covers(self, z_um: np.ndarray) -> np.ndarray:
        a = np.abs(z_um)
        return (a >= self.inner_um) & (a <= self.band_um)

    def coefficients(self, z_um: np.ndarray) -> np.ndarray:
        """(rank, N) coefficients for samples at depths ``z_um`` (inside the band)."""
        return np.stack([np.interp(z_um, self.z_grid, c) for c in self.coeffs])


class AbbeImager:
    """Bright-field image of a strong thin object by Abbe's method, for one objective, sampling and geometry.

    Each condenser point ``s`` illuminates the object with a tilted plane wave; the objective passes the
    object's spectrum shifted by ``s`` through its defocused pupil, and the camera adds the intensities of
    these mutually incoherent images: ``I = sum_s w_s |P(s) + F^-1[P(f + s) O(f)]|^2`` with ``O`` the
    spectrum of ``t - 1``. Nothing is linearised: a head whose phase delay is about a radian scatters
    light out of the pupil at its edges (a dark rim at focus) and keeps the contrast it has across focus.

    The condenser disc is sampled on a sunflower spiral (equal areas): 32 points within 1 um of focus,
    more where the defocus spreads the tilted images apart (``source_points``). Against a 512-point
    condenser the image of a head differs by 5-10% (L2 of its modulation) within 4 um of focus
    (``tests/sim/test_optics.py``). Pupil products are cached per depth step and patch shape (up to
    :data:`PUPIL_CACHE_BYTES`); all condenser points have equal weight, so the sum needs no weighting.
    """

    PUPIL_CACHE_BYTES = 160 * 2**20

    def __init__(self, objective: Objective, pixel_size_um: float, microscope: Microscope = "inverted") -> None:
        if not pixel_size_um > 0:
            raise ConfigError(f"pixel_size_um must be > 0, got {pixel_size_um}")
        self.objective = objective
        self.pixel_size_um = pixel_size_um
        self.microscope = microscope
        self.light_sign = light_sign(microscope)
        self._lock = threading.Lock()
        self._pupils: OrderedDict = OrderedDict()
        self._pupil_bytes = 0

    @staticmethod
    def source_points(defocus_um: float) -> int:
        """Condenser samples: the images of neighbouring samples are shifted by ~defocus x their angular
        spacing; keep that under ~0.4 um (the resolution) so the sum shows no ghost copies."""
        return int(np.clip(32 + 16 * (abs(defocus_um) - 1.0), 32, 80))

    def _source(self, n: int) -> np.ndarray:
        """(n, 3): fx, fy (1/um) and weight of ``n`` equal-area points on the condenser disc (Vogel spiral)."""
        k = np.arange(n) + 0.5
        r = self.objective.condenser_na / self.objective.wavelength_um * np.sqrt(k / n)
        ang = k * np.pi * (3.0 - np.sqrt(5.0))
        return np.stack([r * np.cos(ang), r * np.sin(ang), np.full(n, 1.0 / n)], axis=1)

    def margin_px(self, z_um: float) -> int:
        """Pixels around an object its image spreads over: defocus blur plus three resolution lengths."""
        na, n = self.objective.na, self.objective.immersion_index
        res = self.objective.wavelength_um / (2 * na)
        return int(np.ceil((abs(z_um) * na / np.sqrt(n**2 - na**2) + 3 * res) / self.pixel_size_um))

    def _pupil_products(self, key: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(S, H, W) complex pupils P(f + s), the (S,) background fields P(s) and the (S,) weights."""
        cache_key = (key, shape)
        with self._lock:
            hit = self._pupils.get(cache_key)
            if hit is not None:
                self._pupils.move_to_end(cache_key)
                return hit
        obj = self.objective
        delta = self.light_sign * key * Z_STEP_UM  # defocus along the light
        src = self._source(self.source_points(delta))
        k_n = obj.immersion_index / obj.wavelength_um
        f_pupil2 = (obj.na / obj.wavelength_um) ** 2
        fy = scipy.fft.fftfreq(shape[0], d=self.pixel_size_um)
        fx = scipy.fft.fftfreq(shape[1], d=self.pixel_size_um)

        def pupil(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
            g2 = gx**2 + gy**2
            kz = np.sqrt(np.maximum(k_n**2 - g2, 0.0))
            return ((g2 <= f_pupil2) * np.exp(-2j * np.pi * (kz - k_n) * delta)).astype(np.complex64)

        stack = pupil(fx[None, None, :] + src[:, 0, None, None], fy[None, :, None] + src[:, 1, None, None])
        background = pupil(src[:, 0], src[:, 1])
        weights = (src[:, 2] / np.sum(src[:, 2] * np.abs(background) ** 2)).astype(np.float32)
        entry = (stack, background, weights)
        with self._lock:
            if cache_key not in self._pupils:
                self._pupils[cache_key] = entry
                self._pupil_bytes += stack.nbytes
            while self._pupil_bytes > self.PUPIL_CACHE_BYTES and len(self._pupils) > 1:
                self._pupil_bytes -= self._pupils.popitem(last=False)[1][0].nbytes
        return entry

    def image(self, scattered: np.ndarray, z_um: float) -> np.ndarray:
        """Modulation ``I/B - 1`` (float32) of an object whose transmission minus one is ``scattered``
        (complex, on a patch already padded by :meth:`margin_px`), ``z_um`` above the focal plane."""
        key = int(round(float(np.clip(z_um, -MAX_DEFOCUS_UM, MAX_DEFOCUS_UM)) / Z_STEP_UM))
        stack, background, weights = self._pupil_products(key, scattered.shape)
        spectrum = scipy.fft.fft2(scattered.astype(np.complex64), workers=1)
        fields = scipy.fft.ifft2(stack * spectrum[None], workers=1, overwrite_x=True)
        fields += background[:, None, None]
        power = fields.real**2
        power += fields.imag**2
        intensity = power.sum(axis=0)
        intensity *= weights[0]  # equal weights (equal-area points, all inside the pupil)
        intensity -= 1.0
        return intensity.astype(np.float32, copy=False)


@lru_cache(maxsize=16)
def shared_imager(objective: Objective, pixel_size_um: float, microscope: Microscope = "inverted") -> AbbeImager:
    """One Abbe imager (and pupil cache) per objective, sampling and geometry per process."""
    return AbbeImager(objective, round(pixel_size_um, 9), microscope)
