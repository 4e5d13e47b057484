"""Safety checks that run before any motion starts, whoever commands it (controller, GUI, calibration).

Limits are in lab coordinates: x, y from the optical axis in stage axes, z in the focus drive's frame.
The dish floor's height there comes from the floor calibration, the pipette's outer radius from the rig
file; the tip's axis may not go below ``floor + outer radius + margin``. :class:`TipGuard` is installed
on the manipulator (``Manipulator.guard``), so every target of every caller is checked, and so is the path
to it: a manipulator may move its axes one after another, and with a tilted axis an intermediate corner of
that path can lie lower than both ends. Near the floor moves are slowed; speeds are capped; estimates that
are too old or too unsure do not move anything.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from calibration.transforms import ManipulatorTransform
from drivers.errors import LimitError, MicromanipError
from drivers.units import Seconds, Um, UmPerS, UmRange


class SafetyError(MicromanipError):
    """A commanded motion was refused before it started."""


class SafetySettings(BaseModel):
    """The rig file's ``control.safety``: margins, workspace and speed caps. The floor itself is measured
    (``micromanip calibrate floor``), never typed in."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    floor_margin_um: Um = Field(0.3, ge=0, le=100, description="the pipette's outer wall is kept this far above"
                                " the dish floor")
    slow_zone_um: Um = Field(3.0, ge=0, le=1000, description="above the floor limit, moves are slowed")
    slow_speed_um_s: UmPerS = Field(20.0, gt=0)
    workspace_um: tuple[UmRange, UmRange, UmRange] = Field(
        ((-150.0, 150.0), (-100.0, 100.0), (0.0, 200.0)),
        description="tip workspace: x and y from the optical axis, z above the dish floor")
    max_tip_speed_um_s: UmPerS = Field(200.0, gt=0, description="cap on every manipulator move, manual ones too")
    max_stage_speed_um_s: UmPerS = Field(1500.0, gt=0)
    max_estimate_age_s: Seconds = Field(0.15, gt=0, le=5)
    min_depth_confidence: float = Field(0.3, gt=0, le=1, description="largest depth std accepted is 1/conf - 1 um")

    @model_validator(mode="after")
    def _consistent(self) -> SafetySettings:
        if self.slow_speed_um_s > self.max_tip_speed_um_s:
            raise ValueError(f"slow_speed_um_s {self.slow_speed_um_s:g} exceeds max_tip_speed_um_s "
                             f"{self.max_tip_speed_um_s:g}")
        if self.workspace_um[2][0] < 0:
            raise ValueError("workspace_um z starts below the dish floor (z is measured up from the floor)")
        return self


class SafetyConfig(SafetySettings):
    """The limits in force: the rig file's settings plus the calibrated floor and the pipette's radius."""

    floor_z_um: Um = Field(0.0, description="dish floor height in lab z, from the floor calibration")
    pipette_outer_radius_um: Um = Field(4.0, gt=0, le=100, description="from control.pipette")
    calibration_error_um: Um = Field(0.0, ge=0, le=100, description="worst residual of the manipulator and floor"
                                     " fits in force: the tip may truly be this much lower than the transforms say")

    @property
    def tip_floor_um(self) -> float:
        """Lowest tip axis height: dish floor + pipette outer radius + margin + the calibrations' error. The
        guard checks moves through the same transforms the controller uses, so it cannot see their error:
        a fit accepted with 1 um residuals against a 0.3 um margin could drive the glass into the dish
        (docs/campaigns.md, the robustness sweep's "tip 1.5 um off in z")."""
        return self.floor_z_um + self.pipette_outer_radius_um + self.floor_margin_um + self.calibration_error_um

    @property
    def tip_workspace_lab_um(self) -> tuple[tuple[float, float], ...]:
        (x0, x1), (y0, y1), (z0, z1) = self.workspace_um
        return (x0, x1), (y0, y1), (self.floor_z_um + z0, self.floor_z_um + z1)


def check_tip_target(lab_um, cfg: SafetyConfig) -> None:
    """Refuse a tip target outside the workspace or below the floor limit (nothing moves)."""
    lab_um = np.asarray(lab_um, dtype=float)
    if lab_um.shape != (3,) or not np.all(np.isfinite(lab_um)):
        raise SafetyError(f"tip target {lab_um.tolist()} is not three finite coordinates")
    if lab_um[2] < cfg.tip_floor_um:
        raise SafetyError(f"tip target z={lab_um[2]:.2f} um is below the floor limit {cfg.tip_floor_um:.2f} um")
    for value, (lo, hi), axis in zip(lab_um, cfg.tip_workspace_lab_um, "xyz"):
        if not lo <= value <= hi:
            raise SafetyError(f"tip target {axis}={value:.1f} um outside the workspace [{lo:g}, {hi:g}] um")


def tip_speed(current_z_um: float, target_z_um: float, requested_um_s: float, cfg: SafetyConfig) -> float:
    """Cap the speed; inside the slow zone above the floor limit, move slowly."""
    speed = min(requested_um_s, cfg.max_tip_speed_um_s)
    if min(current_z_um, target_z_um) < cfg.tip_floor_um + cfg.slow_zone_um:
        speed = min(speed, cfg.slow_speed_um_s)
    return speed


def check_estimate(age_s: float, depth_std_um: float | None, cfg: SafetyConfig) -> None:
    if not math.isfinite(age_s) or age_s > cfg.max_estimate_age_s:
        raise SafetyError(f"estimate is {age_s * 1e3:.0f} ms old (limit {cfg.max_estimate_age_s * 1e3:.0f} ms)")
    if depth_std_um is not None:
        limit = 1.0 / cfg.min_depth_confidence - 1.0
        if not math.isfinite(depth_std_um) or depth_std_um > limit:
            raise SafetyError(f"depth uncertainty {depth_std_um:.2f} um exceeds {limit:.2f} um")


_TOLERANCE_UM = 1e-6  # round-off of the transform there and back (a target exactly at the limit is allowed)


class TipGuard:
    """Checks every manipulator move in lab coordinates before it starts; installed as the manipulator's
    ``guard``. A refusal is a :class:`LimitError` (nothing moved), as for the device's own limits."""

    def __init__(self, cfg: SafetyConfig, manip_tf: ManipulatorTransform) -> None:
        self.cfg = cfg
        self.manip_tf = manip_tf

    def __call__(self, name: str, current_um: np.ndarray, target_um: np.ndarray, speed_um_s: float) -> float:
        """The speed allowed for the move from ``current_um`` to ``target_um`` (manipulator axes).

        A target must lie inside the workspace and above the floor limit, and so must every path to it;
        a tip found outside (a calibration that changed, a tip placed by hand) may still move back, as
        long as the move takes it nowhere lower and no further out.
        """
        cfg = self.cfg
        current_lab = self.manip_tf.to_lab(current_um)
        target_lab = self.manip_tf.to_lab(target_um)
        if not np.all(np.isfinite(target_lab)):
            raise LimitError(name, "move_to_um", f"tip target {target_lab.tolist()} is not finite")
        lowest = self.lowest_path_z_um(current_um, target_um)
        floor = cfg.tip_floor_um
        if lowest < floor - _TOLERANCE_UM and lowest < current_lab[2] - _TOLERANCE_UM:
            where = "tip target" if target_lab[2] <= lowest + _TOLERANCE_UM else "the path to the tip target"
            raise LimitError(name, "move_to_um", f"{where} reaches z={lowest:.2f} um, below the floor limit "
                             f"{floor:.2f} um" + ("" if where == "tip target" else " (move up first)"))
        for axis, value, now, (lo, hi) in zip("xyz", target_lab, current_lab, cfg.tip_workspace_lab_um):
            outside = max(lo - value, value - hi, 0.0)
            if outside > _TOLERANCE_UM and outside > max(lo - now, now - hi, 0.0) + _TOLERANCE_UM:
                raise LimitError(name, "move_to_um",
                                 f"tip target {axis}={value:.1f} um outside the workspace [{lo:g}, {hi:g}] um")
        return tip_speed(float(current_lab[2]), float(min(target_lab[2], lowest)), speed_um_s, cfg)

    def lowest_path_z_um(self, current_um: np.ndarray, target_um: np.ndarray) -> float:
        """Lowest lab z over every path that moves each axis monotonically from start to target (the box
        they span: lab z is affine in the axes, so its minimum is at a corner)."""
        corners = np.array(list(itertools.product(*zip(np.asarray(current_um, float), np.asarray(target_um, float)))))
        return float(self.manip_tf.to_lab(corners)[:, 2].min())
