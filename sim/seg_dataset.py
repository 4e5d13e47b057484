"""Segmentation tiles for the XY network: the twin's scenes under randomised rigs (``sim.xy_randomise``),
resampled to the network's working pixel size, with exact label masks.

Each tile draws its rig, its network pixel size (log-uniform over ``um_per_px``: the runtime may run the
network anywhere in that range), a sample (density from a few cells to a clinical field's ~70 in view,
debris of every size) and a focal plane. The camera image is rendered at the rig's own pixel size and
then shrunk or enlarged to the tile exactly as the runtime resamples frames (``cv2.resize``, area
averaging when shrinking). Labels: 0 background (round debris and cells included), 1 head, 2 flagellum,
3 pipette, 255 ignored (heads between ``HEAD_DOF`` and ``IGNORE_DOF`` depths of field from focus:
blurred enough that calling them either way is defensible).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from perception.classes import SEG_CLASSES, SEG_IGNORE
from sim.config import Morphology, SceneConfig
from sim.scene import PipettePose, Scene
from sim.standalone import CropRenderer
from sim.xy_randomise import RigStyle, camera_image, randomise_debris, sample_morphology, sample_style

HEAD_DOF, IGNORE_DOF = 1.5, 3.0  # a head within 1.5 depths of field (at least 2.5 um) is a head
MIN_HEAD_UM = 2.5


def _renderer(cache: dict, style: RigStyle) -> CropRenderer:
    key = (style.magnification, style.na, style.camera_um_per_px)
    if key not in cache:
        cache[key] = CropRenderer(style.objective(), sensor_pixel_um=style.sensor_pixel_um)
    return cache[key]


def render_tile(rng: np.random.Generator, tile_px: int, um_per_px: tuple[float, float],
                cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, float, RigStyle]:
    """One randomised tile: (image uint8, label uint8, network um/px, rig)."""
    cache = {} if cache is None else cache
    style = sample_style(rng)
    net_um = float(np.exp(rng.uniform(np.log(um_per_px[0]), np.log(um_per_px[1]))))
    cam_px = int(np.ceil(tile_px * net_um / style.camera_um_per_px))
    net_um = cam_px * style.camera_um_per_px / tile_px
    crops = _renderer(cache, style)
    morph = Morphology() if style.reference else sample_morphology(rng)
    crops.renderer.morphology = morph
    half = cam_px * style.camera_um_per_px / 2
    dof = style.depth_of_field_um
    density = float(np.exp(rng.uniform(np.log(1 / 6000), np.log(1 / 250))))  # cells per um^2
    n_sperm = int(min(rng.poisson(density * (2 * half + 60) ** 2), 160))
    cfg = SceneConfig(n_sperm=n_sperm, n_debris=0, field_half_size_um=(half + 30, half + 30), morphology=morph)
    scene = Scene(cfg, seed=int(rng.integers(2**31)))
    focus = float(rng.uniform(8.0, 14.0))
    spread = max(1.5, 0.7 * dof)
    for cell in scene.sperm:
        cell.path_pos_um[2] = max(1.0, focus + rng.normal(0, spread))
        cell.head_velocity_um_s = cell.path_speed_um_s * cell.heading()
    randomise_debris(scene, rng, half + 5, focus, dof, crops.renderer.k0)
    pipette = None
    if rng.random() < (0.6 if style.reference else 0.3):
        pipette = _place_pipette(rng, scene, half, focus, dof)
    view = crops.view((0.0, 0.0), focus, cam_px)
    delta, masks = crops.delta(scene, view, pipette, style.exposure_ms / 1000.0, True)
    image = cv2.resize(camera_image(delta, style, rng), (tile_px, tile_px),
                       interpolation=cv2.INTER_AREA if cam_px > tile_px else cv2.INTER_LINEAR)
    label = np.zeros((tile_px, tile_px), np.uint8)
    shrink = lambda m: cv2.resize(m.astype(np.float32), (tile_px, tile_px), interpolation=cv2.INTER_AREA)  # noqa: E731
    label[shrink(masks.pipette) > 0.5] = SEG_CLASSES["pipette"]
    label[(shrink(masks.flagellum) > 0.3) & (label == 0)] = SEG_CLASSES["flagellum"]
    _draw_heads(label, scene, view, morph, tile_px / cam_px, max(MIN_HEAD_UM, HEAD_DOF * dof), IGNORE_DOF * dof)
    return image, label, net_um, style


def _place_pipette(rng: np.random.Generator, scene: Scene, half: float, focus: float, dof: float) -> PipettePose:
    """Anywhere in the tile, or (half the time, when a head near focus is in view) aimed at a head as during
    an aspiration: the head a few um in front of the opening, the glass at its depth or above it. A cell on
    the dish floor is met by an opening whose axis lies a wall's thickness and a margin above it, so the
    glass is then out of focus while the head is sharp: the network has to find heads there, and they are
    rare in tiles where the pipette lands at random."""
    yaw = rng.uniform(-np.pi, np.pi)
    axis = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    heads = [c.head_center_um() for c in scene.sperm]
    near = [h for h in heads if abs(h[2] - focus) < max(1.0, dof) and max(abs(h[0]), abs(h[1])) < half - 5.0]
    if near and rng.random() < 0.5:
        head = near[int(rng.integers(len(near)))]
        tip = head + axis * rng.uniform(2.0, 12.0)
        tip[:2] += rng.normal(0.0, 1.0, 2)
        tip[2] = head[2] + rng.uniform(-1.0, 4.5)
    else:
        tip = np.array([rng.uniform(-half, half), rng.uniform(-half, half), focus + rng.normal(0, 1.5)])
    return PipettePose(tip, axis)


def _draw_heads(label: np.ndarray, scene: Scene, view, morph, scale: float, head_um: float, ignore_um: float) -> None:
    """Head ellipses at sub-pixel precision; heads farther from focus than ``head_um`` are ignored, beyond
    ``ignore_um`` left as background (a faint ring)."""
    shift = 4
    far = sorted(scene.sperm, key=lambda c: -abs(c.head_center_um()[2] - view.focus_z_um))  # near ones on top
    for cell in far:
        head = cell.head_center_um()
        dz = abs(head[2] - view.focus_z_um)
        if dz > ignore_um:
            continue
        a_um, b_um, _, angle = cell.head_projection(morph)
        c = (view.sample_to_px(head[None])[0] + 0.5) * scale - 0.5
        axes = (max(1, int(round(a_um / view.pixel_size_um * scale * 2**shift))),
                max(1, int(round(b_um / view.pixel_size_um * scale * 2**shift))))
        centre = (int(round(c[0] * 2**shift)), int(round(c[1] * 2**shift)))
        value = SEG_CLASSES["head"] if dz <= head_um else SEG_IGNORE
        cv2.ellipse(label, centre, axes, float(np.rad2deg(angle)), 0, 360, value, -1, cv2.LINE_8, shift)


def generate_seg_dataset(n_tiles: int, seed: int, out: Path, tile_px: int = 256,
                         um_per_px: tuple[float, float] = (0.28, 0.7)) -> Path:
    """Write ``images/``, ``masks/`` and ``manifest.csv`` (image, mask, split, um_per_px, rig). Tile ``i``
    draws from its own seed ``(seed, i)``: the set does not depend on how it was generated."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    cache: dict = {}
    rows = []
    for i in range(n_tiles):
        image, label, net_um, style = render_tile(np.random.default_rng([seed, i]), tile_px, um_per_px, cache)
        cv2.imwrite(str(out / "images" / f"tile{i:05d}.png"), image)
        cv2.imwrite(str(out / "masks" / f"tile{i:05d}.png"), label)
        rig = "reference" if style.reference else f"{style.magnification:.0f}x/{style.na} {style.camera_um_per_px}" \
              f" um/px{' phase' if style.phase_halo >= 0.5 else ''}{' inverted' if style.inverted else ''}"
        rows.append({"image": f"images/tile{i:05d}.png", "mask": f"masks/tile{i:05d}.png",
                     "split": "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test"),
                     "um_per_px": round(net_um, 5), "rig": rig})
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "mask", "split", "um_per_px", "rig"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "dataset.json").write_text(json.dumps({"kind": "seg", "n_tiles": n_tiles, "seed": seed, "tile_px": tile_px,
                                                   "um_per_px": list(um_per_px), "classes": SEG_CLASSES,
                                                   "ignore": SEG_IGNORE}, indent=1))
    return manifest
