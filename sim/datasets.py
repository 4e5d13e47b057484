"""Synthetic datasets with exact ground truth: depth z-stacks (segmentation tiles: ``sim.seg_dataset``).

Depth z-stacks follow the reference paper's protocol as a person runs it at the microscope
(:func:`generate_depth_dataset`): the operator finds a cell, focuses on it (the zero plane is where a focus
criterion peaks, give or take the operator's own precision), then records 9 planes from -2.0 to +2.0 um
at 0.5 um steps, one crop of 96x96 around the head per plane. The cell is alive: between planes it swims,
beats and rolls, and may change depth, so a label is the plane's nominal offset from the chosen zero,
not the head's true height above the focal plane (both are in the manifest). Exposure, illumination,
noise and compression change from stack to stack; debris and, sometimes, other cells share the crop.
Splits are by sperm, never by image.

Depth convention (docs/sim.md): a label ``+d`` means the head is ``d`` um ABOVE the focal plane (+z up,
away from the dish floor; in the inverted reference microscope, away from the objective).
"""

from __future__ import annotations

import copy
import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from drivers.errors import ConfigError
from drivers.objective import Objective
from perception.classes import DEPTHS_UM
from perception.runtime.focus import FOCUS_MEASURES
from sim.camera_model import SensorModel, compress_jpeg, demosaiced_unit_noise, expose, uneven_illumination
from sim.config import Motility, OpticsConfig, SceneConfig
from sim.scene import Scene, allocate_counts
from sim.sperm import Sperm, sample_sperm
from sim.standalone import CropRenderer

#: Cells an operator records z-stacks of: ICSI selection happens in viscous PVP, where cells swim slowly,
#: and a stack needs a cell that stays at its depth for a couple of seconds.
STACK_MOTILITY_MIX = {Motility.RAPID: 0.25, Motility.SLOW: 0.3, Motility.NON_PROGRESSIVE: 0.2, Motility.IMMOTILE: 0.25}


def depth_folder(depth_um: float) -> str:
    """Class folder name: signed depth with one decimal (``-2.0`` ... ``+0.0`` ... ``+2.0``)."""
    return f"{depth_um:+.1f}".replace("-0.0", "+0.0")


def split_of(index: int, n: int, fractions: tuple[float, float, float], order: np.ndarray) -> str:
    rank = int(np.flatnonzero(order == index)[0])
    if rank < round(fractions[0] * n):
        return "train"
    if rank < round((fractions[0] + fractions[1]) * n):
        return "val"
    return "test"


@dataclass(frozen=True)
class RecordingChain:
    """The ranges each stack's :class:`Acquisition` is drawn from: exposure and lamp, the condenser
    aperture operators close for contrast, mono or colour (demosaiced) cameras, cameras with pixels
    coarser than the analysis scale (recordings resampled up), magnifications a little off, lossless or
    JPEG files. The default spans the reference rig (raw Mono8 at 0.1465 um/px, condenser 0.5) to
    recordings like MHSMA's, whose noise has a lag-1 correlation of 0.35 and whose heads carry little
    detail beyond 1 cycle/um."""

    exposure_ms: tuple[float, float] = (1.5, 8.0)
    gain_db: tuple[float, float] = (0.0, 6.0)
    background: tuple[float, float] = (0.3, 0.65)  # background level, fraction of the pixel range
    condenser_na: tuple[float, ...] = (0.35, 0.4, 0.45, 0.5)
    colour_share: float = 0.5
    noise_correlation: tuple[float, float] = (0.1, 0.35)
    blur_um: tuple[float, float] = (0.0, 0.25)  # residual aberrations (a dish bottom, relay optics), s.d.
    coarse_share: float = 0.25
    pixel_factor: tuple[float, float] = (0.7, 2.0)
    scale: tuple[float, float] = (0.9, 1.1)
    jpeg_share: float = 0.3
    jpeg_quality: tuple[int, int] = (75, 95)


#: The recording chain of MHSMA's crops as the twin reproduces it (calibrated on MHSMA's calibration part):
#: the realism report images twin heads through it to compare like with like.
MHSMA_CHAIN = RecordingChain(background=(0.45, 0.55), gain_db=(0.0, 0.0), condenser_na=(0.4,), colour_share=1.0,
                             noise_correlation=(0.2, 0.25), coarse_share=1.0, pixel_factor=(0.75, 0.75),
                             blur_um=(0.18, 0.22), scale=(1.0, 1.0), jpeg_share=0.0)


@dataclass(frozen=True)
class Acquisition:
    """Camera, illumination and recording chain of one stack (drawn from a :class:`RecordingChain`)."""

    exposure_ms: float
    gain_db: float
    illumination_fraction: float
    condenser_na: float
    jpeg_quality: int | None
    illumination: np.ndarray
    scale: float  # image scale relative to the reference rig's (another tube lens or camera adapter)
    noise_correlation: float  # neighbour weight of demosaicing (0: mono camera)
    pixel_factor: float  # camera pixels this many times coarser than the analysis scale, resampled up
    blur_um: float  # s.d. of the residual optical blur

    @staticmethod
    def draw(rng: np.random.Generator, size_px: int, chain: RecordingChain) -> Acquisition:
        return Acquisition(
            exposure_ms=float(rng.uniform(*chain.exposure_ms)), gain_db=float(rng.uniform(*chain.gain_db)),
            illumination_fraction=float(rng.uniform(*chain.background)),
            condenser_na=float(rng.choice(chain.condenser_na)),
            jpeg_quality=int(rng.integers(chain.jpeg_quality[0], chain.jpeg_quality[1] + 1))
            if rng.random() < chain.jpeg_share else None,
            illumination=uneven_illumination((size_px, size_px), rng, gradient=0.03, blobs=0.015, blob_px=30.0),
            scale=float(rng.uniform(*chain.scale)),
            noise_correlation=float(rng.uniform(*chain.noise_correlation)) if rng.random() < chain.colour_share else 0.0,
            pixel_factor=float(rng.uniform(*chain.pixel_factor)) if rng.random() < chain.coarse_share else 1.0,
            blur_um=float(rng.uniform(*chain.blur_um)),
        )

    def pixels(self, crops: CropRenderer, scene: Scene, view, rng: np.random.Generator) -> np.ndarray:
        delta, _ = crops.delta(scene, view, None, self.exposure_ms / 1000.0)
        if self.scale != 1.0:
            h, w = delta.shape
            m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, self.scale)
            delta = cv2.warpAffine(delta, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        # the operator sets the lamp for a background at 30-65% of the range whatever the exposure and gain:
        # a shorter exposure or more gain, fewer electrons (more noise)
        reference = SensorModel()
        sensor = SensorModel(illumination_fraction=self.illumination_fraction * 10 ** (-self.gain_db / 20)
                             * reference.reference_exposure_ms / self.exposure_ms)
        if self.blur_um > 0:
            delta = cv2.GaussianBlur(delta, (0, 0), self.blur_um / crops.pixel_size_um)
        intensity = self.illumination * (1.0 + delta)
        h, w = intensity.shape
        if self.pixel_factor != 1.0:  # camera pixels of another size; the recording is resampled to the analysis scale
            size = (max(4, int(round(w / self.pixel_factor))), max(4, int(round(h / self.pixel_factor))))
            intensity = cv2.resize(intensity, size, interpolation=cv2.INTER_AREA if self.pixel_factor > 1 else cv2.INTER_LINEAR)
        noise = demosaiced_unit_noise(rng, intensity.shape, self.noise_correlation)
        img = expose(intensity, self.exposure_ms, self.gain_db, sensor, noise)
        if img.shape != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC if self.pixel_factor > 1 else cv2.INTER_AREA)
        return compress_jpeg(img, self.jpeg_quality) if self.jpeg_quality is not None else img


@dataclass
class DepthDatasetSpec:
    n_sperm: int = 232
    seed: int = 0
    crop_px: int = 96
    center_jitter_px: float = 2.0  # the runtime crops at a detected, not a true, centroid
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    motility_mix: dict[Motility, float] | None = None
    neighbours: bool = True  # debris and, sometimes, other cells in the crop
    live: bool = True  # cells swim, beat and roll between planes (False: frozen, for diagnostics)
    plane_interval_s: tuple[float, float] = (0.1, 0.3)  # focus step, settling and exposure of one plane
    focus_sweep_um: float = 2.5  # the operator looks this far either side of the head for the best plane
    focus_noise_um: float = 0.2  # s.d. of the operator's zero plane about the focus criterion's peak
    # what the operator maximises: intensity contrast (normalised variance, the best bright-field autofocus
    # measure in Sun et al. 2004), calibrated on MHSMA's calibration part (docs/sim.md, "Z-stacks like the
    # paper's"); "tenengrad" (edge energy) peaks ~0.4 um nearer the head and gives heads fainter than MHSMA's
    focus_measure: str = "normalised_variance"
    chain: RecordingChain = field(default_factory=RecordingChain)
    depths_um: tuple[float, ...] = DEPTHS_UM  # planes recorded (a subset for realism checks)
    face_on_share: float = 0.25  # cells that keep their head face-on to the floor, not rolling (viscous PVP near
    # the surface, Nosrati et al. 2015); calibrated on MHSMA's head axis ratios
    max_drift_um: float = 1.0  # a stack whose head moved more than this in height is recorded again
    microscope: str = "inverted"
    scene: dict = field(default_factory=dict)  # SceneConfig overrides (e.g. head population)


def perceived_focus(crops: CropRenderer, scene: Scene, cell: Sperm, sweep_um: float, rng: np.random.Generator,
                    noise_um: float, measure: str = "normalised_variance", size_px: int = 40) -> float:
    """The focal plane (um, sample frame) an operator calls 'in focus' for ``cell``: where the focus
    ``measure`` (``perception.runtime.focus.FOCUS_MEASURES``) of a window around the head (6 um), on the
    intensity relative to the background, peaks in a sweep of +-``sweep_um`` around the head, refined by a
    parabola through the peak, plus the operator's own scatter of ``noise_um``.

    A head is a strong phase object: its contrast is lowest near its mid-plane and peaks on either side
    (Selinummi et al. 2009), so the plane a person or an autofocus picks is not the head's mid-plane;
    ``focus_offset_um`` in the manifest records by how much.
    """
    if measure not in FOCUS_MEASURES:
        raise ConfigError(f"focus_measure must be one of {sorted(FOCUS_MEASURES)}, got {measure!r}")
    score = FOCUS_MEASURES[measure]
    head = cell.head_center_um()
    offsets = np.round(np.arange(-sweep_um, sweep_um + 1e-9, 0.2), 2)
    scores = []
    for off in offsets:
        delta, _ = crops.delta(scene, crops.view((head[0], head[1]), float(head[2] + off), size_px))
        scores.append(score(1.0 + delta))
    i = int(np.argmax(scores))
    best = float(offsets[i])
    if 0 < i < len(scores) - 1:
        a, b, c = scores[i - 1], scores[i], scores[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            best += 0.2 * 0.5 * (a - c) / denom
    return float(head[2] + best + rng.normal(0.0, noise_um))


def focus_peaks(n_cells: int, seed: int, measures: tuple[str, ...], condenser_na: float = 0.4,
                sweep_um: float = 2.5) -> dict[str, np.ndarray]:
    """Per focus measure, where it peaks on each of ``n_cells`` immotile twin heads (no operator scatter):
    the focal plane's height above the head's mid-plane, um. Which measure stands for the operator is
    chosen on these (docs/sim.md)."""
    cfg = SceneConfig.model_validate({"n_sperm": 0, "n_debris": 0, "motility_mix": STACK_MOTILITY_MIX, "periodic": False})
    crops = CropRenderer(Objective(condenser_na=condenser_na), scene_cfg=cfg)
    rng = np.random.default_rng(seed)
    peaks: dict[str, list[float]] = {m: [] for m in measures}
    for sid in range(n_cells):
        scene = Scene(cfg, seed=int(rng.integers(2**31)))
        cell = sample_sperm(sid, Motility.IMMOTILE, cfg.kinematics[Motility.IMMOTILE], cfg, rng)
        scene.sperm = [cell]
        mid_um = float(cell.head_center_um()[2])
        for m in peaks:
            peaks[m].append(perceived_focus(crops, scene, cell, sweep_um, rng, 0.0, m) - mid_um)
    return {m: np.asarray(v) for m, v in peaks.items()}


def _advance(scene: Scene, seconds: float) -> None:
    step = scene.cfg.step_s
    for _ in range(max(1, int(round(seconds / step)))):
        scene.step(step, None, 0.0)


def _record_stack(spec: DepthDatasetSpec, cfg: SceneConfig, renderers: dict[float, CropRenderer], sid: int,
                  motility: Motility, rng: np.random.Generator) -> list[tuple[dict, np.ndarray]] | None:
    """One cell's z-stack as (manifest row, pixels) per plane; None when the head, at the moments the planes
    were taken, was more than ``spec.max_drift_um`` above or below where it was when the operator focused
    (its image would jump in and out of focus: the operator records another cell). What stays is label
    noise a live cell has: its head bobbing with the beat and its path drifting, within that margin."""
    mix = cfg.motility_mix
    scene = Scene(cfg.model_copy(update={"n_debris": 8 if spec.neighbours else 0}), seed=int(rng.integers(2**31)))
    cell = sample_sperm(sid, motility, cfg.kinematics[motility], cfg, rng)
    x0, y0 = float(cell.path_pos_um[0]), float(cell.path_pos_um[1])
    if scene.debris.pos_um.size:  # debris around the cell, on the floor or in the medium
        scene.debris.pos_um[:, :2] = np.array([x0, y0]) + rng.uniform(-12, 12, (scene.debris.pos_um.shape[0], 2))
    scene.sperm = [cell]
    if rng.random() < spec.face_on_share:
        cell.roll_rad, cell.roll_hz = float(rng.normal(0.0, np.deg2rad(15))) % (2 * np.pi), 0.0
    if spec.neighbours:
        for j in range(rng.poisson(0.3)):
            kind = Motility(rng.choice([m.value for m in mix]))
            other = sample_sperm(sid + 100000 * (j + 1), kind, cfg.kinematics[kind], cfg, rng)
            other.path_pos_um[:2] = [x0 + rng.uniform(-12, 12), y0 + rng.uniform(-12, 12)]
            scene.sperm.append(other)
    acq = Acquisition.draw(rng, spec.crop_px, spec.chain)
    crops = renderers[acq.condenser_na]
    intervals = rng.uniform(*spec.plane_interval_s, len(spec.depths_um))
    if spec.live:  # the cell's motion over the stack, on a copy: a stack it would leave costs no rendering
        trial, z0 = copy.deepcopy(scene), float(cell.head_center_um()[2])
        for dt in intervals:
            _advance(trial, float(dt))
            if abs(float(trial.sperm[0].head_center_um()[2]) - z0) > spec.max_drift_um:
                return None
    zero = perceived_focus(crops, scene, cell, spec.focus_sweep_um, rng, spec.focus_noise_um, spec.focus_measure)
    head0 = cell.head_center_um()
    planes = []
    # planes bottom to top: the focal plane rises, so the label (head above the plane) falls
    for depth, dt in zip(sorted(spec.depths_um, reverse=True), intervals):
        if spec.live:
            _advance(scene, float(dt))
        elif cell.beat_hz > 0:  # frozen in place, but each plane catches another beat phase and roll
            cell.beat_phase = float(rng.uniform(0, 2 * np.pi))
            cell.roll_rad = float((cell.roll_rad + rng.normal(0, 0.6)) % (2 * np.pi))
        head = cell.head_center_um()
        focus = zero - float(depth)
        jitter = rng.normal(0.0, spec.center_jitter_px, 2) * crops.pixel_size_um
        view = crops.view((head[0] + jitter[0], head[1] + jitter[1]), focus, spec.crop_px)
        name = f"sperm{sid:05d}_{depth_folder(depth)}.png"
        row = {"file": f"{depth_folder(depth)}/{name}", "sperm_id": sid, "depth_um": float(depth),
               "true_depth_um": round(float(head[2] - focus), 3), "focus_offset_um": round(float(zero - head0[2]), 3),
               "motility": motility.value, "head_shape": cell.head.shape.value if cell.head else "",
               "beat_phase": round(cell.beat_phase, 4), "roll_rad": round(cell.roll_rad, 4),
               "exposure_ms": round(acq.exposure_ms, 2), "jpeg_quality": acq.jpeg_quality or "",
               "condenser_na": acq.condenser_na, "pixel_factor": round(acq.pixel_factor, 2)}
        planes.append((row, acq.pixels(crops, scene, view, rng)))
    return planes


def generate_depth_dataset(spec: DepthDatasetSpec, out: Path) -> Path:
    """Write PNG crops in one folder per depth class and ``manifest.csv``; returns the manifest path."""
    mix = spec.motility_mix or STACK_MOTILITY_MIX
    cfg = SceneConfig.model_validate({**spec.scene, "n_sperm": 0, "n_debris": 0, "motility_mix": mix,
                                      "optics": OpticsConfig(microscope=spec.microscope), "periodic": False})
    renderers = {na: CropRenderer(Objective(condenser_na=na), scene_cfg=cfg) for na in spec.chain.condenser_na}
    rng = np.random.default_rng(spec.seed)
    out.mkdir(parents=True, exist_ok=True)
    for d in DEPTHS_UM:
        (out / depth_folder(d)).mkdir(exist_ok=True)
    classes = allocate_counts(spec.n_sperm, mix)
    rng.shuffle(classes)
    order = rng.permutation(spec.n_sperm)
    rows = []
    for sid, motility in enumerate(classes):
        split = split_of(sid, spec.n_sperm, spec.splits, order)
        for _ in range(300):  # the operator discards a stack whose cell left the depth range, and records another
            stack = _record_stack(spec, cfg, renderers, sid, motility, rng)
            if stack is not None:
                break
        else:
            raise RuntimeError(f"no {motility.value} cell stayed within {spec.max_drift_um} um of its depth in 300 tries")
        for row, pixels in stack:
            cv2.imwrite(str(out / row["file"]), pixels)
            rows.append({**row, "split": split})
    rows.sort(key=lambda r: (r["sperm_id"], r["depth_um"]))
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["file"])
        writer.writeheader()
        writer.writerows(rows)
    meta = {k: v for k, v in asdict(spec).items() if k not in ("motility_mix", "chain")}
    meta["chain"] = asdict(spec.chain)
    meta.update({"kind": "depth", "depths_um": list(DEPTHS_UM),
                 "pixel_size_um": next(iter(renderers.values())).pixel_size_um,
                 "motility_mix": {m.value: w for m, w in mix.items()}})
    (out / "dataset.json").write_text(json.dumps(meta, indent=1))
    return manifest
