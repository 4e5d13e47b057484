"""The digital twin's shared state: the scene plus the simulated devices that act on it.

Devices attach themselves; the world asks them where the stage, focus, pipette and pump are at the
current clock time, steps the scene physics up to that time, and renders views with ground truth.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.clock import Clock
from drivers.objective import Objective
from sim.config import Morphology, Motility, PipetteConfig, SceneConfig
from sim.optics import shared_optics
from sim.render import Masks, Renderer, View
from sim.scene import PipettePose, Scene

if TYPE_CHECKING:
    from sim.devices.focus import SimFocusDrive
    from sim.devices.manipulator import SimManipulator
    from sim.devices.pump import SimPump
    from sim.devices.stage import SimXYStage


@dataclass(frozen=True)
class SpermTruth:
    id: int
    motility: Motility
    head_px: tuple[float, float]  # ROI pixel (col, row)
    head_um: tuple[float, float, float]  # sample frame
    depth_um: float  # head height minus focal plane
    path_depth_um: float  # the swimming path's height minus focal plane: the head swings about it with the beat
    heading_deg: float
    captured: bool
    axial_in_pipette_um: float


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one rendered frame."""

    time_s: float
    sperm: list[SpermTruth]
    tip_px: tuple[float, float] | None
    tip_um: tuple[float, float, float] | None
    tip_depth_um: float | None
    masks: Masks | None = field(default=None, repr=False)

    def by_id(self, sid: int) -> SpermTruth | None:
        return next((s for s in self.sperm if s.id == sid), None)


class World:
    """Scene + device states in one place, advanced lazily to the clock's time."""

    def __init__(self, scene_cfg: SceneConfig, objective: Objective, clock: Clock, seed: int) -> None:
        self.cfg = scene_cfg
        self.objective = objective
        self.clock = clock
        self.seed = seed
        self.scene = Scene(scene_cfg, seed)
        self.stage: SimXYStage | None = None
        self.focus: SimFocusDrive | None = None
        self.manipulator: SimManipulator | None = None
        self.pump: SimPump | None = None
        self._t = clock.now()
        self.lock = threading.RLock()
        # what the shared renderer is keyed on, serialised once (not per frame)
        self._render_key = (scene_cfg.morphology.model_dump_json(), scene_cfg.pipette.model_dump_json(),
                            scene_cfg.optics.microscope)

    def attach(self, device: Any) -> None:
        setattr(self, device.kind, device)

    # ----- state -----------------------------------------------------------------------------------------
    def stage_xy_um(self) -> tuple[float, float]:
        return self.stage.true_position_um() if self.stage else (0.0, 0.0)

    def focus_z_um(self) -> float:
        return self.focus.true_z_um() if self.focus else 0.0

    def pipette_pose(self) -> PipettePose | None:
        if self.manipulator is None:
            return None
        tip_lab = self.manipulator.tip_lab_um()
        sx, sy = self.stage_xy_um()
        yaw = np.deg2rad(self.cfg.pipette.yaw_deg)
        return PipettePose(tip_um=tip_lab + np.array([sx, sy, 0.0]), axis=np.array([np.cos(yaw), np.sin(yaw), 0.0]))

    def pump_rate_nl_s(self) -> float:
        return self.pump.effective_rate_nl_s() if self.pump else 0.0

    def advance(self) -> None:
        """Step the physics up to the clock's current time."""
        with self.lock:
            now = self.clock.now()
            step = self.cfg.step_s
            stepped = False
            while self._t + step <= now + 1e-12:
                self.scene.step(step, self.pipette_pose(), self.pump_rate_nl_s())
                self._t += step
                stepped = True
            if stepped:
                self.scene.wrap_about(self.stage_xy_um())

    # ----- rendering -------------------------------------------------------------------------------------
    def renderer(self, pixel_size_um: float) -> Renderer:
        return _shared_renderer(self.objective, round(pixel_size_um, 6), *self._render_key)

    def render(self, view: View, exposure_s: float, with_masks: bool = False) -> tuple[np.ndarray, FrameTruth]:
        with self.lock:
            self.advance()
            pose = self.pipette_pose()
            delta, masks = self.renderer(view.pixel_size_um).render(self.scene, view, pose, exposure_s, with_masks)
            return delta, self.truth(view, pose, masks)

    def truth(self, view: View, pose: PipettePose | None, masks: Masks | None = None) -> FrameTruth:
        cells = []
        for cell in self.scene.sperm:
            head = cell.head_center_um()
            px = view.sample_to_px(head[None])[0]
            h = cell.heading()
            cells.append(SpermTruth(
                id=cell.id, motility=cell.motility, head_px=(float(px[0]), float(px[1])),
                head_um=(float(head[0]), float(head[1]), float(head[2])),
                depth_um=float(head[2] - view.focus_z_um),
                path_depth_um=float(cell.path_pos_um[2] - view.focus_z_um),
                heading_deg=float(np.rad2deg(np.arctan2(h[1], h[0]))),
                captured=cell.captured, axial_in_pipette_um=cell.capture_axial_um if cell.captured else 0.0,
            ))
        tip_px = tip_um = tip_depth = None
        if pose is not None:
            t = view.sample_to_px(pose.tip_um[None])[0]
            tip_px = (float(t[0]), float(t[1]))
            tip_um = tuple(float(v) for v in pose.tip_um)
            tip_depth = float(pose.tip_um[2] - view.focus_z_um)
        return FrameTruth(self.clock.now(), cells, tip_px, tip_um, tip_depth, masks)  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def _shared_renderer(objective: Objective, pixel_size_um: float, morphology_json: str, pipette_json: str,
                     microscope: str) -> Renderer:
    """One renderer per optics, cell shape and pipette per process: a campaign builds a rig per trial, and
    each new renderer rebuilt its depth basis (an SVD, ~1 s) and its pipette images (~0.8 s). Its caches
    hold only images of given inputs, so sharing it changes no frame."""
    return Renderer(shared_optics(objective, pixel_size_um, microscope), Morphology.model_validate_json(morphology_json),
                    PipetteConfig.model_validate_json(pipette_json))
