"""Synthetic datasets with exact ground truth: depth z-stacks (segmentation tiles: ``sim.seg_dataset``).

Depth protocol of the reference paper: each sperm is imaged at 9 planes from -2.0 to +2.0 um (head
height minus focal plane) and cropped 96x96 around the head. Between planes the cell keeps beating and
rolling, as a motile cell does while the focus steps. Splits are by sperm, never by image.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sim.camera_model import SensorModel
from sim.config import Motility, SceneConfig
from sim.scene import Scene, allocate_counts
from sim.sperm import sample_sperm
from sim.standalone import CropRenderer

DEPTHS_UM = tuple(np.round(np.arange(-2.0, 2.0001, 0.5), 1))


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


@dataclass
class DepthDatasetSpec:
    n_sperm: int = 232
    seed: int = 0
    crop_px: int = 96
    center_jitter_px: float = 2.0  # the runtime crops at a detected, not a true, centroid
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    motility_mix: dict[Motility, float] | None = None
    neighbours: bool = True  # debris and, sometimes, another cell in the crop


def generate_depth_dataset(spec: DepthDatasetSpec, out: Path) -> Path:
    """Write PNG crops in one folder per depth class and ``manifest.csv``; returns the manifest path."""
    mix = spec.motility_mix or {Motility.RAPID: 0.5, Motility.SLOW: 0.25, Motility.NON_PROGRESSIVE: 0.1,
                                Motility.IMMOTILE: 0.15}
    cfg = SceneConfig(n_sperm=0, n_debris=0, motility_mix=mix)
    crops = CropRenderer(scene_cfg=cfg)
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
        scene = Scene(cfg.model_copy(update={"n_debris": 8 if spec.neighbours else 0}), seed=int(rng.integers(2**31)))
        scene.debris.pos_um[:, :2] = rng.uniform(-9, 9, (scene.debris.pos_um.shape[0], 2))
        cell = sample_sperm(sid, motility, cfg.kinematics[motility], cfg, rng)
        cell.path_pos_um[:] = [0.0, 0.0, rng.uniform(2.0, 8.0)]
        cell.pitch_rad = float(rng.normal(0.0, 0.12))
        scene.sperm = [cell]
        if spec.neighbours and rng.random() < 0.15:
            other = sample_sperm(sid + 100000, Motility.RAPID, cfg.kinematics[Motility.RAPID], cfg, rng)
            other.path_pos_um[:] = [rng.uniform(-12, 12), rng.uniform(-12, 12), cell.path_pos_um[2] + rng.normal(0, 2)]
            scene.sperm.append(other)
        sensor = SensorModel(illumination_fraction=float(rng.uniform(0.4, 0.7)))
        exposure_ms = float(rng.uniform(2.0, 6.0))
        for depth in DEPTHS_UM:
            # Time passes between planes: the beat and roll move on (random phase for a motile cell).
            if cell.beat_hz > 0:
                cell.beat_phase = float(rng.uniform(0, 2 * np.pi))
                cell.roll_rad = float((cell.roll_rad + rng.normal(0, 0.6)) % (2 * np.pi))
                cell.head_velocity_um_s = cell.path_speed_um_s * cell.heading()
            head = cell.head_center_um()
            jitter = rng.normal(0.0, spec.center_jitter_px, 2) * crops.pixel_size_um
            view = crops.view((head[0] + jitter[0], head[1] + jitter[1]), float(head[2] - depth), spec.crop_px)
            pixels, _ = crops.image(scene, view, rng, exposure_ms, sensor)
            name = f"sperm{sid:05d}_{depth_folder(depth)}.png"
            cv2.imwrite(str(out / depth_folder(depth) / name), pixels)
            rows.append({"file": f"{depth_folder(depth)}/{name}", "sperm_id": sid, "depth_um": float(depth),
                         "motility": motility.value, "beat_phase": round(cell.beat_phase, 4),
                         "roll_rad": round(cell.roll_rad, 4), "split": split})
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["file"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "dataset.json").write_text(json.dumps({"kind": "depth", "n_sperm": spec.n_sperm, "seed": spec.seed,
                                                   "crop_px": spec.crop_px, "depths_um": list(DEPTHS_UM),
                                                   "pixel_size_um": crops.pixel_size_um}, indent=1))
    return manifest
