"""The rig file's ``control:`` section, typed as strictly as the devices: unknown keys are refused, every
quantity has its unit (pint), limits are finite and ordered.

```yaml
control:
  motility: motile            # which cells the operator window targets (campaigns: --motile/--immotile)
  safety: {floor_margin_um: 0.3, max_tip_speed_um_s: 100}   # control.safety.SafetySettings
  pipette: {axis_deg: 0, inner_radius_um: 3, wall_um: 1}
  states: {aspirating: {rate_nl_s: 1.2}}                     # control.states.MachineParams
  pid: {kp: 6, ki: 0.5, kd: 0.05}                            # stage servo gains
  controller: {lost_frames: 14}
  perception: {backend: auto}
  weights: {seg: unext_seg, depth: my-weights/depth.pt}      # shipped name or a file (relative to the rig file)
  trials: {roi_px: [640, 408, 640, 384]}                     # app.trials.TrialSettings
  calibration: {store: calibration.json, max_residual_um: 1}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.trials import TrialSettings
from control.supervisor import SupervisorConfig
from control.pid import PIDGains
from control.safety import SafetyConfig, SafetySettings
from control.states import MachineParams
from drivers.units import Deg, Seconds, Um, UmPerS, UmRange


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PipetteGeometry(_Strict):
    axis_deg: Deg = Field(0.0, ge=-180, le=180, description="direction from the opening into the pipette, in"
                          " image axes")
    inner_radius_um: Um = Field(3.0, gt=0, le=100)
    wall_um: Um = Field(1.0, gt=0, le=100)

    @property
    def outer_radius_um(self) -> float:
        return self.inner_radius_um + self.wall_um


class ControllerSettings(_Strict):
    swimming_um_s: UmPerS = Field(5.0, ge=0, description="slower cells are pushed in by the stage")
    lost_frames: int = Field(14, ge=1, le=10_000, description="target missing this long: retarget")
    vanished_frames: int = Field(3, ge=1, le=10_000, description="target missing this long at the opening: it"
                                 " entered")
    max_search_moves: int = Field(3, ge=0, le=1000)
    search_step_um: Um = Field(120.0, gt=0, le=10_000)


class PerceptionSettings(_Strict):
    backend: Literal["auto", "torch", "onnx"] = "auto"
    inference_threads: int = Field(1, ge=1, le=64)
    seg_scale: float | None = Field(None, gt=0.05, le=1.0, description="default: the scale the model was trained at")
    latency_compensation_s: Seconds = Field(0.03, ge=0, le=1)
    depth_diffusion_um2_s: float = Field(1.0, ge=0, le=1000)
    depth_relock_per_s: float = Field(1.0, ge=0, le=1000)


class WeightsSettings(_Strict):
    """Shipped model names (perception/weights/) or weight files; checked when the rig file is read."""

    seg: str = Field("unext_seg", min_length=1)
    depth: str = Field("depth_classifier", min_length=1)


class CalibrationSettings(_Strict):
    store: Path | None = Field(None, description="calibration store (JSON); default: the user data folder")
    max_residual_um: Um = Field(1.0, gt=0, le=50, description="a fit with a larger residual is refused")
    camera_step_um: Um | None = Field(None, gt=0, le=1000, description="stage step; default: 1/8 of the view")
    manipulator_span_um: tuple[Um, Um, Um] = Field((20.0, 12.0, 4.0), description="half-size of the tip's"
                                                   " 3-D pattern")
    floor_sweep_um: UmRange = Field((-4.0, 4.0), description="focus sweep around the current focus")


class ControlConfig(_Strict):
    motility: Literal["motile", "immotile"] = "motile"
    safety: SafetySettings = Field(default_factory=SafetySettings)
    pipette: PipetteGeometry = Field(default_factory=PipetteGeometry)
    states: MachineParams = Field(default_factory=MachineParams)
    pid: PIDGains = Field(default_factory=PIDGains)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    perception: PerceptionSettings = Field(default_factory=PerceptionSettings)
    weights: WeightsSettings = Field(default_factory=WeightsSettings)
    trials: TrialSettings = Field(default_factory=TrialSettings)
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)

    def safety_limits(self, floor_z_um: float, calibration_error_um: float = 0.0) -> SafetyConfig:
        """The limits in force for a dish floor at ``floor_z_um`` (lab z), the calibrations in force being
        good to ``calibration_error_um``."""
        return SafetyConfig(**self.safety.model_dump(), floor_z_um=floor_z_um,
                            pipette_outer_radius_um=self.pipette.outer_radius_um,
                            calibration_error_um=calibration_error_um)

    def perception_config(self, roi_wh: tuple[int, int], depth_source: Literal["net", "none"],
                          motility: Literal["motile", "immotile"], threads: int | None = None):
        """The perception pipeline's settings: the rig file's, the weights it names, the pipette's axis, and
        what the run decides (processed region, depth source, which cells to target)."""
        from perception.runtime.pipeline import PerceptionConfig

        p = self.perception
        return PerceptionConfig(
            seg_weights=self.weights.seg, depth_weights=self.weights.depth, backend=p.backend,
            inference_threads=threads or p.inference_threads, roi_px=roi_wh, seg_scale=p.seg_scale,
            depth_source=depth_source, latency_compensation_s=p.latency_compensation_s,
            depth_diffusion_um2_s=p.depth_diffusion_um2_s, depth_relock_per_s=p.depth_relock_per_s,
            want_motility=MOTILITY_CLASSES[motility], pipette_axis_deg=self.pipette.axis_deg,
            pipette_inner_radius_um=self.pipette.inner_radius_um)

    def controller_config(self, safety: SafetyConfig):
        """The aspiration controller's settings with the limits in force (``Rig.safety``)."""
        from control.aspiration import ControllerConfig

        c = self.controller
        return ControllerConfig(
            params=self.states.model_copy(deep=True), safety=safety, stage_gains=self.pid,
            pipette_axis_deg=self.pipette.axis_deg, pipette_inner_radius_um=self.pipette.inner_radius_um,
            pipette_wall_um=self.pipette.wall_um, swimming_um_s=c.swimming_um_s, lost_frames=c.lost_frames,
            vanished_frames=c.vanished_frames, max_search_moves=c.max_search_moves, search_step_um=c.search_step_um)


#: the perception's target policy classes for each kind of campaign
MOTILITY_CLASSES = {"motile": ("rapid_progressive", "slow_progressive"), "immotile": ("immotile", "non_progressive")}
