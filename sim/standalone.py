"""Render single cells or small scenes without a rig: for datasets, scenarios and tests."""

from __future__ import annotations

import numpy as np

from drivers.objective import Objective
from sim.camera_model import SensorModel, background, expose
from sim.config import SceneConfig
from sim.optics import shared_optics
from sim.render import Renderer, View
from sim.scene import PipettePose, Scene

REFERENCE_SENSOR_PIXEL_UM = 5.86


class CropRenderer:
    """Renders square crops centred on a sample-frame point, through the reference optics and camera."""

    def __init__(self, objective: Objective | None = None, scene_cfg: SceneConfig | None = None,
                 sensor_pixel_um: float = REFERENCE_SENSOR_PIXEL_UM) -> None:
        self.objective = objective or Objective()
        self.cfg = scene_cfg or SceneConfig(n_sperm=0, n_debris=0)
        self.pixel_size_um = self.objective.pixel_size_um(sensor_pixel_um)
        self.renderer = Renderer(shared_optics(self.objective, self.pixel_size_um, self.cfg.optics.microscope),
                                 self.cfg.morphology, self.cfg.pipette)

    def view(self, center_um: tuple[float, float], focus_z_um: float, size_px: int) -> View:
        # A sensor exactly the size of the crop, centred on the point: ROI = whole sensor.
        return View(size_px, size_px, (0, 0, size_px, size_px), self.pixel_size_um, center_um, focus_z_um)

    def delta(self, scene: Scene, view: View, pipette: PipettePose | None = None, exposure_s: float = 0.0,
              with_masks: bool = False):
        return self.renderer.render(scene, view, pipette, exposure_s, with_masks)

    def image(self, scene: Scene, view: View, rng: np.random.Generator, exposure_ms: float = 4.0,
              sensor: SensorModel | None = None, pipette: PipettePose | None = None, with_masks: bool = False,
              illumination: np.ndarray | None = None):
        """Pixels (and masks) of the view; ``illumination`` is the relative background over the crop
        (default: uniform)."""
        sensor = sensor or SensorModel()
        delta, masks = self.delta(scene, view, pipette, exposure_ms / 1000.0, with_masks)
        w, h = view.roi[2], view.roi[3]
        bg = background((h, w), (0, 0, w, h), 0.0) if illumination is None else illumination
        return expose(bg * (1 + delta), exposure_ms, 0.0, sensor, rng.standard_normal((h, w), dtype=np.float32)), masks
