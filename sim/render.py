"""Render the scene through the microscope's optics into an image region.

Every body element is imaged at its own defocus. Thin, weak elements (flagellum samples, debris) are
splatted into one canvas per defocus bin and convolved with that bin's weak-object kernels; the pipette
is an absorption/phase map convolved with the kernels at its depth; heads, strong objects, are imaged by
Abbe's method (``sim.optics.AbbeImager``) from their anatomy's transmission (``sim.head``). The result is
the relative modulation ``delta`` of the background: ``I = B (1 + delta)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from sim import workers
from sim.config import Morphology, Motility, PipetteConfig
from sim.head import HeadAnatomy, HeadShape, head_transmission, sample_head
from sim.optics import MAX_DEFOCUS_UM, DepthBasis, KernelPair, WeakObjectOptics, shared_imager, shared_optics
from sim.scene import PipettePose, Scene

#: Heads farther from focus than this are imaged through the weak-object kernels of their absorption and
#: phase (10-25% L2 from Abbe's image there, where the head is a faint blur) instead of by Abbe's method,
#: whose condenser sampling and patch grow with the defocus.
ABBE_MAX_DEFOCUS_UM = 4.0


#: Memory kept for head images (a rolling cell's images repeat with its roll and its beat).
HEAD_CACHE_BYTES = 96 * 2**20
#: Side lengths of head patches: a few fixed sizes, so the pupil products are reused between frames.
_PATCH_SIZES = (48, 54, 60, 64, 72, 80, 90, 96, 108, 120, 128, 144, 160, 180, 192, 216, 240, 256, 288, 320, 384)


def _patch_size(n: int) -> int:
    return next((s for s in _PATCH_SIZES if s >= n), n)


@dataclass(frozen=True)
class View:
    """What the camera sees: the full sensor geometry, the ROI, and the rig state at capture."""

    sensor_width_px: int
    sensor_height_px: int
    roi: tuple[int, int, int, int]  # x, y, width, height on the sensor
    pixel_size_um: float
    stage_xy_um: tuple[float, float]
    focus_z_um: float
    rotation_deg: float = 0.0  # camera rows/columns relative to the stage axes

    @cached_property
    def _to_px(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample um -> ROI px as ``px = (xy - stage) @ m + offset`` (computed once per view: the renderer
        maps every body element of every cell through it, dozens of calls per frame)."""
        th = np.deg2rad(self.rotation_deg)
        c, s = np.cos(th), np.sin(th)
        m = np.array([[c, -s], [s, c]]) / self.pixel_size_um
        offset = np.array([self.sensor_width_px / 2 - self.roi[0], self.sensor_height_px / 2 - self.roi[1]])
        return m, offset - np.asarray(self.stage_xy_um, dtype=float) @ m

    def sample_to_px(self, xy_um: np.ndarray) -> np.ndarray:
        """Sample-frame (x, y) um -> ROI pixel (col, row), float."""
        m, offset = self._to_px
        return np.atleast_2d(xy_um)[:, :2] @ m + offset

    def px_to_sample(self, px: np.ndarray) -> np.ndarray:
        px = np.atleast_2d(np.asarray(px, dtype=float)).copy()
        px[:, 0] -= self.sensor_width_px / 2 - self.roi[0]
        px[:, 1] -= self.sensor_height_px / 2 - self.roi[1]
        cam = px * self.pixel_size_um
        th = np.deg2rad(self.rotation_deg)
        c, s = np.cos(th), np.sin(th)
        lab = np.stack([c * cam[:, 0] - s * cam[:, 1], s * cam[:, 0] + c * cam[:, 1]], axis=1)
        return lab + np.asarray(self.stage_xy_um)[None, :]


@dataclass
class Masks:
    head: np.ndarray
    flagellum: np.ndarray
    pipette: np.ndarray


def defocus_bin(d_um: np.ndarray) -> np.ndarray:
    """Representative defocus of each element's bin: fine near focus, coarser where kernels change slowly."""
    a = np.abs(d_um)
    step = np.where(a < 2.0, 0.2, np.where(a < 5.0, 0.5, np.where(a < 12.0, 2.0, 5.0)))
    return np.round(d_um / step) * step


def bilinear_weights(fx: np.ndarray, fy: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the 4 pixels around each sub-pixel point (x, y) in a ``width``-wide image, and each
    neighbour's share of the point (bilinear). Points must lie one pixel inside the image."""
    ix, iy = np.floor(fx).astype(np.intp), np.floor(fy).astype(np.intp)
    tx, ty = fx - ix, fy - iy
    base = iy * width + ix
    idx = np.concatenate([base, base + 1, base + width, base + width + 1])
    share = np.concatenate([(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty])
    return idx, share


def symmetric_kernel_multiplier(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """What multiplies an image's packed (CCS) DFT of ``shape`` to convolve it with ``kernel``.

    The defocus kernels (and their basis) are point-symmetric, so their spectra are real: the product is
    elementwise on the packed layout, which ``accumulateProduct`` does three times faster than
    ``mulSpectrums``. ``(1 + 1i) * S`` puts the real spectrum ``S`` into both slots of each packed value.
    """
    r = kernel.shape[0] // 2
    pad = np.zeros(shape, np.float32)
    pad[: 2 * r + 1, : 2 * r + 1] = kernel
    ccs = cv2.dft(np.roll(pad, (-r, -r), axis=(0, 1)))
    return cv2.mulSpectrums(np.ones_like(ccs), ccs, 0)


def _motion_kernel(offsets_px: list[np.ndarray], half: int) -> np.ndarray:
    """Normalised kernel that averages an image over the given sub-exposure displacements (bilinear)."""
    k = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    for off in offsets_px:
        # correlation kernel: output(x) = sum k(dx) in(x + dx) -> sample at -offset
        fx, fy = half - off[0], half - off[1]
        ix, iy = int(np.floor(fx)), int(np.floor(fy))
        tx, ty = fx - ix, fy - iy
        for dx, dy, w in ((0, 0, (1 - tx) * (1 - ty)), (1, 0, tx * (1 - ty)), (0, 1, (1 - tx) * ty), (1, 1, tx * ty)):
            if 0 <= iy + dy < k.shape[0] and 0 <= ix + dx < k.shape[1]:
                k[iy + dy, ix + dx] += w
    return k / max(float(k.sum()), 1e-12)


@dataclass
class _Accumulator:
    """The modulation image and helpers to add convolved sources into it with clipping."""

    delta: np.ndarray
    extra_margin: int = 0
    masks: Masks | None = None

    def add(self, patch: np.ndarray, x0: int, y0: int) -> None:
        h, w = self.delta.shape
        ph, pw = patch.shape
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + pw, w), min(y0 + ph, h)
        if xa >= xb or ya >= yb:
            return
        self.delta[ya:yb, xa:xb] += patch[ya - y0 : yb - y0, xa - x0 : xb - x0]


#: Depth bands whose flagellum samples are imaged through a low-rank kernel basis instead of per-depth
#: kernels: (inner um, outer um, rank). Ranks keep the worst kernel's L2 error under ~7% (near) and 4%
#: (3-5 um, on the 2x grid); beyond 5 um the kernels change too fast with depth for a small basis.
BASIS_BANDS = ((0.0, 3.0, 5), (3.0, 5.0, 6))


@dataclass
class Renderer:
    """Renders scenes for one objective and pixel size; owns the optics' kernel cache."""

    optics: WeakObjectOptics
    morphology: Morphology
    pipette_cfg: PipetteConfig
    cache_heads: bool = True  # image heads pointing along +x once per roll/depth step and turn the image
    _pipette_cache: OrderedDict = field(default_factory=OrderedDict)
    _pipette_geometry: dict = field(default_factory=dict)
    _coarse: dict = field(default_factory=dict)
    _bases: list[tuple[DepthBasis, int]] = field(default_factory=list)
    _band_spectra: dict = field(default_factory=dict)
    _bin_spectra: OrderedDict = field(default_factory=OrderedDict)  # far-defocus flagellum bins, per view size
    _bin_margins: dict = field(default_factory=dict)
    _debris_cache: OrderedDict = field(default_factory=OrderedDict)
    _spectra_cache: OrderedDict = field(default_factory=OrderedDict)  # kernel multipliers of small patches
    _head_cache: OrderedDict = field(default_factory=OrderedDict)  # head images pointing along +x
    _head_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)  # shared by the rigs of a process

    def tail_ratio(self) -> float:
        """Absorption per unit phase of the flagellum material."""
        return self.morphology.absorption_per_um / (self.k0 * self.morphology.tail_dn)

    @property
    def p(self) -> float:
        return self.optics.pixel_size_um

    @property
    def k0(self) -> float:
        return 2 * np.pi / self.optics.objective.wavelength_um

    # ----- public ----------------------------------------------------------------------------------------
    def render(self, scene: Scene, view: View, pipette: PipettePose | None, exposure_s: float = 0.0,
               with_masks: bool = False) -> tuple[np.ndarray, Masks | None]:
        """Modulation ``delta`` (float32, ROI shape) and optional ground-truth masks."""
        with self._lock:
            return self._render(scene, view, pipette, exposure_s, with_masks)

    def _render(self, scene: Scene, view: View, pipette: PipettePose | None, exposure_s: float,
                with_masks: bool) -> tuple[np.ndarray, Masks | None]:
        w, h = view.roi[2], view.roi[3]
        acc = _Accumulator(np.zeros((h, w), np.float32))
        if with_masks:
            acc.masks = Masks(np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8))
        pts: list[tuple[np.ndarray, ...]] = []
        heads: list[tuple] = []
        for cell in scene.sperm:
            self._add_sperm(cell, view, acc, pts, heads, exposure_s)
        # The flagella within the kernel-basis bands (FFTs over the whole view that release the GIL) are
        # imaged as side jobs (sim.workers: on a second thread unless the process runs inline) while this
        # thread images heads, far samples, debris and the pipette: the goal is video rate on 2 cores.
        # Each job has its own output and they are summed in a fixed order, so frames do not depend on
        # thread timing.
        banded = self._splat_points(acc, *[np.concatenate(c) for c in zip(*pts)]) if pts else []
        for cell, head_um, offsets in heads:
            self._add_head(cell, view, acc, head_um, offsets)
        self._add_debris(scene, view, acc)
        if pipette is not None:
            self._add_pipette(acc, view, pipette)
        for job in banded:
            acc.add(*job.result())
        return acc.delta, acc.masks

    # ----- sperm -----------------------------------------------------------------------------------------
    def _visible(self, view: View, px: np.ndarray, margin_px: float) -> bool:
        w, h = view.roi[2], view.roi[3]
        return bool(np.any((px[:, 0] > -margin_px) & (px[:, 0] < w + margin_px)
                           & (px[:, 1] > -margin_px) & (px[:, 1] < h + margin_px)))

    def _add_sperm(self, cell, view: View, acc: _Accumulator, pts: list, heads: list, exposure_s: float) -> None:
        """Collects the cell's flagellum samples into ``pts`` and its head's arguments into ``heads``."""
        morph = self.morphology
        head = cell.head_center_um()
        d_head = head[2] - view.focus_z_um
        if abs(d_head) > MAX_DEFOCUS_UM:
            return
        head_px = view.sample_to_px(head[None])[0]
        reach = (morph.principal_length_um + morph.midpiece_length_um + 5) / self.p
        if not self._visible(view, head_px[None], reach + 150):
            return
        # Motion blur: the exposure integrates positions over the last exposure_s seconds: the head's
        # displacement, and the flagellum's beat (its distal part sweeps microns in a few milliseconds).
        shift_um = cell.head_velocity_um_s * exposure_s
        beat_rad = 2 * np.pi * cell.beat_hz * exposure_s
        n_sub = int(np.clip(max(np.ceil(np.linalg.norm(shift_um[:2]) / self.p), min(np.ceil(beat_rad / 0.35), 2)), 1, 6))
        times = [(k + 0.5) / n_sub for k in range(n_sub)] if n_sub > 1 else [0.0]
        offsets = [-t * shift_um for t in times]
        heads.append((cell, head, offsets))
        n_waves = self._n_waves(cell)
        for t, off in zip(times, offsets):
            tail, area = cell.tail_points(morph, n_waves, cell.beat_phase - t * beat_rad)
            ds = np.linalg.norm(np.diff(tail, axis=0), axis=1)
            ds = np.append(ds, ds[-1] if ds.size else 0.0)
            phase_w = self.k0 * self._tail_dn(cell, tail.shape[0]) * area * ds / self.p**2 / n_sub
            txy = view.sample_to_px(tail[:, :2] + off[None, :2])
            keep = (txy[:, 0] > -200) & (txy[:, 0] < view.roi[2] + 200) & (txy[:, 1] > -200) & (txy[:, 1] < view.roi[3] + 200)
            if keep.any():
                pts.append((txy[keep, 0], txy[keep, 1], tail[keep, 2] + off[2] - view.focus_z_um, phase_w[keep]))
        if acc.masks is not None:
            self._mask_sperm(cell, view, acc.masks, head, tail)

    def _tail_dn(self, cell, n: int) -> np.ndarray:
        """Index excess of each flagellum sample: the midpiece's mitochondrial sheath, then the principal piece."""
        morph = self.morphology
        s = np.linspace(0.0, (morph.midpiece_length_um + morph.principal_length_um) * cell.scale, n)
        return np.where(s < morph.midpiece_length_um * cell.scale, morph.midpiece_dn, morph.tail_dn)

    def _n_waves(self, cell) -> float:
        return 1.1 if cell.motility != Motility.IMMOTILE else 1.0

    def _anatomy(self, cell) -> HeadAnatomy:
        """The cell's head; a cell made without one gets a normal head of the configured population,
        drawn from its id (the same head in every frame)."""
        if cell.head is None:
            cell.head = sample_head(self.morphology.head, np.random.default_rng(cell.id), HeadShape.NORMAL)
        return cell.head

    def _add_head(self, cell, view: View, acc: _Accumulator, head_um: np.ndarray, offsets: list[np.ndarray]) -> None:
        """The head at its own defocus, from its anatomy's transmission; motion blur averages its image
        (intensities add over the exposure) along the sub-exposure displacements.

        The optics are rotationally symmetric, so the head is imaged pointing along +x (:meth:`_head_image`,
        cached per head, roll, foreshortening and depth step) and the image is turned and placed with
        sub-pixel accuracy. Far from focus the blur carries no fine detail, so the head is imaged on a 2x
        coarser grid there.
        """
        d = float(defocus_bin(np.array([head_um[2] - view.focus_z_um]))[0])
        f = min(self._coarse_factor(d), 2)  # 4x loses up to 25% (L2) of a far head's fringes; 2x under 8%
        p = self.p * f
        head = self._anatomy(cell)
        direction = cell.head_direction()
        angle = float(np.arctan2(direction[1], direction[0])) - np.deg2rad(view.rotation_deg)
        c_fine = view.sample_to_px(head_um[None])
        spread = int(np.ceil(max(np.abs(o[:2]).max() for o in offsets) / p)) + 1
        margin = int(np.ceil(head.max_half_extent_um() / p)) + 2 + spread \
            + (shared_imager(self.optics.objective, p, self.optics.microscope).margin_px(d)
               if abs(d) <= ABBE_MAX_DEFOCUS_UM else self.optics.kernels(d).radius_px // f + 1)
        # the head's image reaches no farther than its patch: skip heads whose patch misses the view
        # (a cell's tail can be in view while its head is not; 40% of the heads in a trial)
        if not self._visible(view, c_fine, margin * f):
            return
        c = (c_fine[0] + 0.5) / f - 0.5  # fine -> coarse pixel coordinates (identity when f == 1)
        length_scale = float(np.hypot(direction[0], direction[1]))
        if self.cache_heads:
            image, centre = self._head_image(head, cell.roll_rad, length_scale, d, f)
            size = image.shape[0] + 2 * spread
            x0, y0 = int(np.floor(c[0])) - size // 2, int(np.floor(c[1])) - size // 2
            cs, sn = np.cos(angle), np.sin(angle)
            rot = np.array([[cs, -sn], [sn, cs]])
            shift = np.array([c[0] - x0, c[1] - y0]) - rot @ np.array([centre[0], centre[1]])
            out = cv2.warpAffine(image, np.hstack([rot, shift[:, None]]).astype(np.float64), (size, size),
                                 flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        else:
            frac = (float(c[0] - np.floor(c[0])), float(c[1] - np.floor(c[1])))
            image, centre = self._image_head(head, cell.roll_rad, length_scale, angle, frac, d, f, spread)
            x0, y0 = int(np.floor(c[0])) - centre[0], int(np.floor(c[1])) - centre[1]
            out = image
        if len(offsets) > 1:
            blur = _motion_kernel([o[:2] / p for o in offsets], spread)
            out = cv2.filter2D(out, -1, blur, borderType=cv2.BORDER_CONSTANT)
        if f > 1:
            out = cv2.resize(out, (out.shape[1] * f, out.shape[0] * f), interpolation=cv2.INTER_LINEAR)
        acc.add(out, x0 * f, y0 * f)

    def _head_image(self, head: HeadAnatomy, roll_rad: float, length_scale: float, d: float,
                    f: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Modulation of the head pointing along +x, centred on pixel ``centre`` of the returned patch, on
        the ``f``-times coarser grid. Roll is taken in 15 degree steps (the projection is the same at
        ``rho``, ``-rho`` and ``pi - rho``) and foreshortening in 5% steps, so a rolling cell's images
        repeat and are cached."""
        folded = float(np.mod(roll_rad, np.pi))
        roll_q = round(min(folded, np.pi - folded) / np.deg2rad(15)) * np.deg2rad(15)
        length_q = round(float(np.clip(length_scale, 0.3, 1.0)) / 0.05) * 0.05
        key = (head.key, roll_q, length_q, d, f)
        hit = self._head_cache.get(key)
        if hit is not None:
            self._head_cache.move_to_end(key)
            return hit
        entry = self._image_head(head, roll_q, length_q, 0.0, (0.0, 0.0), d, f, 0)
        self._head_cache[key] = entry
        self._head_bytes += entry[0].nbytes
        while self._head_bytes > HEAD_CACHE_BYTES and len(self._head_cache) > 1:
            self._head_bytes -= self._head_cache.popitem(last=False)[1][0].nbytes
        return entry

    def _image_head(self, head: HeadAnatomy, roll_rad: float, length_scale: float, angle: float,
                    frac: tuple[float, float], d: float, f: int, pad: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Modulation of the head at in-plane ``angle``, its centre ``frac`` of a pixel right of and below
        pixel ``centre`` of the returned patch (``pad`` more pixels each side for motion blur)."""
        p = self.p * f
        half = int(np.ceil(head.max_half_extent_um() / p)) + 2 + pad
        box = 2 * half + 1
        o = head_transmission(head, roll_rad, length_scale, angle, (half + frac[0], half + frac[1]), (box, box), p, self.k0)
        if abs(d) <= ABBE_MAX_DEFOCUS_UM:
            imager = shared_imager(self.optics.objective, p, self.optics.microscope)
            n = _patch_size(box + 2 * imager.margin_px(d))
            at = (n - box) // 2
            patch = np.zeros((n, n), np.complex64)
            patch[at : at + box, at : at + box] = o
            return imager.image(patch, d), (at + half, at + half)
        # far from focus: the weak-object kernels of the head's absorption and phase
        kern = (self._coarse_optics(f) if f > 1 else self.optics).kernels(d)
        t = 1.0 + o
        a_map = (-np.log(np.maximum(np.abs(t), 1e-6))).astype(np.float32)
        image = self._image_maps(np.angle(t).astype(np.float32), a_map, kern, f)
        return image, (half + kern.radius_px, half + kern.radius_px)

    def _image_maps(self, p_map: np.ndarray, a_map: np.ndarray, kern: KernelPair, f: int,
                    keep_spectra: bool = True) -> np.ndarray:
        """``h_P * phase - h_A * absorption`` of the maps, on a patch one kernel radius larger each side.

        By DFT with the kernels' spectra cached per (grid, depth, size): a third of the time of two
        ``filter2D`` calls, which transform the kernel again each time. The kernels are symmetric, so
        convolution and OpenCV's correlation agree. ``keep_spectra=False`` for one-off large patches.
        """
        r = kern.radius_px
        (mh, mw), (h, w) = p_map.shape, (p_map.shape[0] + 2 * r, p_map.shape[1] + 2 * r)
        shape = (cv2.getOptimalDFTSize(h), cv2.getOptimalDFTSize(w))  # what wraps around lands outside
        key = (f, kern.z_um, shape)
        spectra = self._spectra_cache.get(key)
        if spectra is None:
            spectra = (symmetric_kernel_multiplier(kern.phase, shape), -symmetric_kernel_multiplier(kern.absorption, shape))
            if keep_spectra:
                self._spectra_cache[key] = spectra
                if len(self._spectra_cache) > 128:
                    self._spectra_cache.popitem(last=False)
        else:
            self._spectra_cache.move_to_end(key)
        total = np.zeros(shape, np.float32)
        for source, multiplier in zip((p_map, a_map), spectra):
            canvas = np.zeros(shape, np.float32)
            canvas[r : r + mh, r : r + mw] = source
            cv2.accumulateProduct(cv2.dft(canvas), multiplier, total)
        return cv2.idft(total, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)[:h, :w]

    def _mask_sperm(self, cell, view: View, masks: Masks, head: np.ndarray, tail: np.ndarray) -> None:
        anatomy = self._anatomy(cell)
        direction = cell.head_direction()
        c = view.sample_to_px(head[None])[0]
        half = int(np.ceil(anatomy.max_half_extent_um() / self.p)) + 2
        x0, y0 = int(np.floor(c[0])) - half, int(np.floor(c[1])) - half
        o = head_transmission(anatomy, cell.roll_rad, float(np.hypot(direction[0], direction[1])),
                              float(np.arctan2(direction[1], direction[0])) - np.deg2rad(view.rotation_deg),
                              (c[0] - x0, c[1] - y0), (2 * half + 1, 2 * half + 1), self.p, self.k0)
        m = _Accumulator(masks.head.astype(np.float32))
        m.add((np.abs(o) > 1e-4).astype(np.float32), x0, y0)
        masks.head[:] = (m.delta > 0).astype(np.uint8)
        poly = np.round(view.sample_to_px(tail[:, :2])).astype(np.int32)
        cv2.polylines(masks.flagellum, [np.ascontiguousarray(poly[::2]).reshape(-1, 1, 2)], False, 1, thickness=3)

    def _add_debris(self, scene: Scene, view: View, acc: _Accumulator) -> None:
        """Debris: small refractile spheres, each imaged at its own defocus.

        Debris does not move, so each particle's image is cached per defocus bin and quarter-pixel
        position; a frame then only pastes patches (they were most of a frame's cost).
        """
        deb = scene.debris
        if deb.radius_um.size == 0:
            return
        xy = view.sample_to_px(deb.pos_um[:, :2])
        d = defocus_bin(deb.pos_um[:, 2] - view.focus_z_um)
        visible = (np.abs(d) <= MAX_DEFOCUS_UM) & (xy[:, 0] > -150) & (xy[:, 0] < view.roi[2] + 150) \
            & (xy[:, 1] > -150) & (xy[:, 1] < view.roi[3] + 150)
        for i in np.flatnonzero(visible):
            ix, iy = int(np.floor(xy[i, 0])), int(np.floor(xy[i, 1]))
            qx, qy = int((xy[i, 0] - ix) * 4), int((xy[i, 1] - iy) * 4)
            key = (float(deb.radius_um[i]), float(deb.dn[i]), float(deb.absorption[i]), float(d[i]), qx, qy)
            out = self._debris_cache.get(key)
            if out is None:
                out = self._debris_patch(deb.radius_um[i], deb.dn[i], deb.absorption[i], float(d[i]),
                                         (qx + 0.5) / 4, (qy + 0.5) / 4)
                self._debris_cache[key] = out
                if len(self._debris_cache) > 2048:
                    self._debris_cache.popitem(last=False)
            half = out.shape[0] // 2
            acc.add(out, ix - half, iy - half)

    def _debris_patch(self, radius_um: float, dn: float, absorption: float, d_um: float, fx: float,
                      fy: float) -> np.ndarray:
        """Image of one sphere centred at (fx, fy) within the patch's centre pixel."""
        kern = self.optics.kernels(d_um)
        half = int(np.ceil(radius_um / self.p)) + 1
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
        rr2 = ((xx - fx) ** 2 + (yy - fy) ** 2) * self.p**2
        thick = 2 * np.sqrt(np.clip(radius_um**2 - rr2, 0, None))
        return self._image_maps((self.k0 * dn * thick).astype(np.float32), (absorption * thick).astype(np.float32),
                                kern, 1)

    def _splat_points(self, acc: _Accumulator, x: np.ndarray, y: np.ndarray, d: np.ndarray,
                      pw: np.ndarray) -> list[Future]:
        """Flagellum samples: the depth bands of :data:`BASIS_BANDS` through their kernel bases (side jobs,
        ``sim.workers``: their futures yield the patches to add), the rest per defocus bin (here).

        Absorption and phase of the flagellum are proportional (one material), so one combined kernel
        ``h_P - (a/phi) h_A`` images both in a single convolution.
        """
        ok = np.abs(d) <= MAX_DEFOCUS_UM
        x, y, d, pw = x[ok], y[ok], d[ok], pw[ok]
        rest = np.ones(x.size, bool)
        banded = []
        for i, (basis, _) in enumerate(self._depth_bases()):
            sel = rest & basis.covers(d)
            if sel.any():
                banded.append(workers.submit(self._splat_basis, i, acc.delta.shape, x[sel], y[sel], d[sel], pw[sel]))
            rest &= ~sel
        x, y, pw, rep = x[rest], y[rest], pw[rest], defocus_bin(d[rest])
        bins = np.unique(rep)
        grid = np.array([self._coarse_factor(float(v)) for v in bins], dtype=int)
        for f in np.unique(grid):
            sel = np.isin(rep, bins[grid == f])
            acc.add(*self._splat_bins(int(f), acc.delta.shape, x[sel], y[sel], rep[sel], pw[sel]))
        return banded

    def _splat_bins(self, f: int, view_shape: tuple[int, int], x: np.ndarray, y: np.ndarray, rep: np.ndarray,
                    pw: np.ndarray) -> tuple[np.ndarray, int, int]:
        """Samples of every cell in the defocus bins rendered on the ``f``-times coarser grid: one canvas per
        bin over the whole view, each multiplied by its kernel's spectrum and all summed before one inverse
        transform. Returns the image over the view with its top-left pixel in view coordinates.

        Per cell and bin, ``filter2D`` transformed the kernel again at every call and each small image was
        resized on its own (a quarter of a frame's time); here the spectra are computed once per view size.
        """
        h, w = view_shape
        r = self._bin_margin(f) + 1
        canvas_shape = (-(-h // f) + 2 * r, -(-w // f) + 2 * r)
        fx, fy = (x + 0.5) / f - 0.5 + r, (y + 0.5) / f - 0.5 + r  # fine -> bin grid (identity at f == 1)
        inside = (fx >= 0) & (fx < canvas_shape[1] - 1) & (fy >= 0) & (fy < canvas_shape[0] - 1)
        fx, fy, rep, weights = fx[inside], fy[inside], rep[inside], pw[inside] / f**2  # weights per fine pixel area
        dft_shape = (cv2.getOptimalDFTSize(canvas_shape[0]), cv2.getOptimalDFTSize(canvas_shape[1]))
        total = np.zeros(dft_shape, np.float32)
        for depth in np.unique(rep):
            sel = rep == depth
            idx, share = bilinear_weights(fx[sel], fy[sel], dft_shape[1])
            canvas = np.bincount(idx, weights=share * np.tile(weights[sel], 4), minlength=dft_shape[0] * dft_shape[1])
            cv2.accumulateProduct(cv2.dft(canvas.astype(np.float32).reshape(dft_shape)),
                                  self._bin_spectrum(f, float(depth), dft_shape), total)
        out = cv2.idft(total, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)[: canvas_shape[0], : canvas_shape[1]]
        if f > 1:
            out = cv2.resize(out, (out.shape[1] * f, out.shape[0] * f), interpolation=cv2.INTER_LINEAR)
        return out, -r * f, -r * f

    def _depth_bases(self) -> list[tuple[DepthBasis, int]]:
        """Kernel bases of the bands in :data:`BASIS_BANDS`, each with its grid's coarsening factor."""
        if not self._bases:
            ratio = self.tail_ratio()
            for inner_um, band_um, rank in BASIS_BANDS:
                factor = self._coarse_factor(inner_um)
                optics = self._coarse_optics(factor) if factor > 1 else self.optics
                self._bases.append((DepthBasis(optics, ratio, band_um, rank, inner_um), factor))
        return self._bases

    def _splat_basis(self, band: int, view_shape: tuple[int, int], x: np.ndarray, y: np.ndarray, d: np.ndarray,
                     pw: np.ndarray) -> tuple[np.ndarray, int, int]:
        """Samples of every cell in one depth band: one canvas per basis kernel, convolved together by FFT.
        Returns the band's image over the view with its top-left pixel in view coordinates.

        The canvas covers the whole view (on the band's grid) plus the kernel margin, so the kernels'
        spectra are computed once per view size. OpenCV's real DFT in its packed (CCS) layout is about
        twice as fast here as scipy's rfft2; the kernels multiply in that layout elementwise.
        """
        basis, f = self._depth_bases()[band]
        h, w = view_shape
        r = basis.radius_px + 1
        canvas_shape = (-(-h // f) + 2 * r, -(-w // f) + 2 * r)
        fx, fy = (x + 0.5) / f - 0.5 + r, (y + 0.5) / f - 0.5 + r  # fine -> band grid (identity at f == 1)
        inside = (fx >= 0) & (fx < canvas_shape[1] - 1) & (fy >= 0) & (fy < canvas_shape[0] - 1)
        fx, fy, d, pw = fx[inside], fy[inside], d[inside], pw[inside]
        coeffs = basis.coefficients(d) * (pw / f**2)[None, :]  # weights are per fine pixel area
        spectra, dft_shape = self._basis_spectra(band, canvas_shape)
        idx, share = bilinear_weights(fx, fy, dft_shape[1])  # splat straight into the DFT-sized canvas
        size = dft_shape[0] * dft_shape[1]
        total = np.zeros(dft_shape, np.float32)
        for c, multiplier in zip(coeffs, spectra):
            canvas = np.bincount(idx, weights=share * np.tile(c, 4), minlength=size).astype(np.float32)
            cv2.accumulateProduct(cv2.dft(canvas.reshape(dft_shape)), multiplier, total)
        out = cv2.idft(total, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)[: canvas_shape[0], : canvas_shape[1]]
        if f > 1:
            out = cv2.resize(out, (out.shape[1] * f, out.shape[0] * f), interpolation=cv2.INTER_LINEAR)
        return out, -r * f, -r * f

    def _basis_spectra(self, band: int, canvas_shape: tuple[int, int]) -> tuple[list[np.ndarray], tuple[int, int]]:
        cached = self._band_spectra.get(band)
        if cached is None or cached[0] != canvas_shape:  # one view size at a time
            basis = self._depth_bases()[band][0]
            # The canvas already holds a kernel radius beyond the view on each side: what the circular
            # convolution wraps around lands in those margins, never in the view.
            dft_shape = (cv2.getOptimalDFTSize(canvas_shape[0]), cv2.getOptimalDFTSize(canvas_shape[1]))
            spectra = [symmetric_kernel_multiplier(kernel, dft_shape) for kernel in basis.kernels]
            cached = self._band_spectra[band] = (canvas_shape, spectra, dft_shape)
        return cached[1], cached[2]

    def _coarse_factor(self, depth_um: float) -> int:
        """Wide defocus blur carries no fine detail: render it on a 2x or 4x coarser grid."""
        r_um = self.optics.blur_radius_um(depth_um)
        return 4 if r_um > 8.0 else 2 if r_um > 2.5 else 1

    def _coarse_optics(self, factor: int) -> WeakObjectOptics:
        if factor not in self._coarse:
            self._coarse[factor] = shared_optics(self.optics.objective, self.p * factor, self.optics.microscope)
        return self._coarse[factor]

    def _bin_spectrum(self, f: int, depth_um: float, dft_shape: tuple[int, int]) -> np.ndarray:
        """Multiplier of one defocus bin's combined flagellum kernel on the ``f``-times coarser grid."""
        key = (f, depth_um, dft_shape)
        spectrum = self._bin_spectra.get(key)
        if spectrum is None:
            kern = (self._coarse_optics(f) if f > 1 else self.optics).kernels(depth_um)
            spectrum = symmetric_kernel_multiplier(kern.phase - np.float32(self.tail_ratio()) * kern.absorption,
                                                   dft_shape)
            self._bin_spectra[key] = spectrum
            if len(self._bin_spectra) > 64:  # every bin of two view sizes
                self._bin_spectra.popitem(last=False)
        else:
            self._bin_spectra.move_to_end(key)
        return spectrum

    def _bin_margin(self, f: int) -> int:
        """Widest kernel radius (px of the ``f`` grid) among the defocus bins imaged on that grid: a fixed
        canvas margin, so a view size keeps its spectra whatever depths a frame holds."""
        if f not in self._bin_margins:
            bins = np.unique(defocus_bin(np.arange(0.0, MAX_DEFOCUS_UM + 0.05, 0.1)))
            optics = self._coarse_optics(f) if f > 1 else self.optics
            self._bin_margins[f] = max(optics.kernels(float(v)).radius_px for v in bins if self._coarse_factor(v) == f)
        return self._bin_margins[f]

    # ----- pipette ---------------------------------------------------------------------------------------
    def _pipette_maps(self, rotation_rad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        """Absorption, phase and glass mask of the pipette in a local patch; returns the tip's patch pixel."""
        cfg = self.pipette_cfg
        p = self.p
        r_i, r_o = 0.5 * cfg.inner_diameter_um, 0.5 * cfg.inner_diameter_um + cfg.wall_um
        length = cfg.visible_length_um
        r_end = r_o * (1 + length / cfg.taper_length_um)
        ux, uy = np.cos(rotation_rad), np.sin(rotation_rad)
        corners = np.array([[0, -r_end], [0, r_end], [length, -r_end], [length, r_end], [-r_o, 0]])
        cx = corners[:, 0] * ux - corners[:, 1] * uy
        cy = corners[:, 0] * uy + corners[:, 1] * ux
        x_lo, x_hi = int(np.floor(cx.min() / p)) - 2, int(np.ceil(cx.max() / p)) + 2
        y_lo, y_hi = int(np.floor(cy.min() / p)) - 2, int(np.ceil(cy.max() / p)) + 2
        yy, xx = np.mgrid[y_lo:y_hi, x_lo:x_hi].astype(np.float32)
        xx *= p
        yy *= p
        s = xx * ux + yy * uy  # along the axis from the tip
        lat = -xx * uy + yy * ux
        grow = 1.0 + np.clip(s, 0, None) / cfg.taper_length_um
        ro, ri = r_o * grow, r_i * grow
        path = 2 * (np.sqrt(np.clip(ro**2 - lat**2, 0, None)) - np.sqrt(np.clip(ri**2 - lat**2, 0, None)))
        path = np.where((s >= 0) & (s <= length), path, 0.0).astype(np.float32)
        phase = self.k0 * cfg.glass_dn * path
        sat = 0.8  # the weak-object model is linear: saturate the thick glass's phase
        phase = sat * np.tanh(phase / sat)
        gy, gx = np.gradient(path, p)
        slope = np.hypot(gx, gy)
        absorb = cfg.wall_loss * slope / (1.0 + slope)
        return absorb.astype(np.float32), phase.astype(np.float32), (path > 0).astype(np.uint8), -x_lo, -y_lo

    def _add_pipette(self, acc: _Accumulator, view: View, pipette: PipettePose) -> None:
        d = float(defocus_bin(np.array([pipette.tip_um[2] - view.focus_z_um]))[0])
        rot = float(np.arctan2(pipette.axis[1], pipette.axis[0])) - np.deg2rad(view.rotation_deg)
        key = (round(d, 3), round(rot, 3))
        cached = self._pipette_cache.get(key)
        if cached is None:
            if key[1] not in self._pipette_geometry:  # the focus moves often, the pipette's angle hardly
                self._pipette_geometry = {key[1]: self._pipette_maps(rot)}
            a_map, p_map, mask, tx, ty = self._pipette_geometry[key[1]]
            kern = self.optics.kernels(d)
            r = kern.radius_px
            out = self._image_maps(p_map, a_map, kern, 1, keep_spectra=False)
            cached = (out, np.pad(mask, r), tx + r, ty + r)
            self._pipette_cache[key] = cached
            if len(self._pipette_cache) > 12:
                self._pipette_cache.popitem(last=False)
        else:
            self._pipette_cache.move_to_end(key)
        out, mask, tx, ty = cached
        tip_px = view.sample_to_px(pipette.tip_um[None])[0]
        x0, y0 = int(round(tip_px[0])) - tx, int(round(tip_px[1])) - ty
        acc.add(out, x0, y0)
        if acc.masks is not None:
            m = _Accumulator(acc.masks.pipette.astype(np.float32))
            m.add(mask.astype(np.float32), x0, y0)
            acc.masks.pipette[:] = (m.delta > 0).astype(np.uint8)
