"""Safety checks that run before any motion the controller commands.

Every target is checked against the workspace and the Z floor; near the floor moves are slowed; speeds
are capped; estimates that are too old or too unsure do not move anything.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import MicromanipError
from drivers.units import Seconds, Um, UmPerS


class SafetyError(MicromanipError):
    """A commanded motion was refused before it started."""


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tip_floor_um: Um = Field(4.3, description="lowest tip axis height: dish floor + pipette outer radius + margin")
    slow_zone_um: Um = Field(3.0, ge=0, description="above the floor limit, moves are slowed")
    slow_speed_um_s: UmPerS = Field(20.0, gt=0)
    tip_workspace_lab_um: tuple[tuple[Um, Um], tuple[Um, Um], tuple[Um, Um]] = (
        (-150.0, 150.0), (-100.0, 100.0), (0.0, 200.0))
    max_tip_speed_um_s: UmPerS = Field(200.0, gt=0)
    max_stage_speed_um_s: UmPerS = Field(1500.0, gt=0)
    max_estimate_age_s: Seconds = Field(0.15, gt=0)
    min_depth_confidence: float = Field(0.3, ge=0, le=1, description="largest depth std accepted is 1/conf - 1 um")


def check_tip_target(lab_um, cfg: SafetyConfig) -> None:
    """Refuse a tip target outside the workspace or below the floor limit (nothing moves)."""
    for value, (lo, hi), axis in zip(lab_um, cfg.tip_workspace_lab_um, "xyz"):
        if not lo <= value <= hi:
            raise SafetyError(f"tip target {axis}={value:.1f} um outside the workspace [{lo:g}, {hi:g}] um")
    if lab_um[2] < cfg.tip_floor_um:
        raise SafetyError(f"tip target z={lab_um[2]:.2f} um is below the floor limit {cfg.tip_floor_um:.2f} um")


def tip_speed(current_z_um: float, target_z_um: float, requested_um_s: float, cfg: SafetyConfig) -> float:
    """Cap the speed; inside the slow zone above the floor limit, move slowly."""
    speed = min(requested_um_s, cfg.max_tip_speed_um_s)
    if min(current_z_um, target_z_um) < cfg.tip_floor_um + cfg.slow_zone_um:
        speed = min(speed, cfg.slow_speed_um_s)
    return speed


def check_estimate(age_s: float, depth_std_um: float | None, cfg: SafetyConfig) -> None:
    if age_s > cfg.max_estimate_age_s:
        raise SafetyError(f"estimate is {age_s * 1e3:.0f} ms old (limit {cfg.max_estimate_age_s * 1e3:.0f} ms)")
    if depth_std_um is not None:
        limit = 1.0 / max(cfg.min_depth_confidence, 1e-6) - 1.0
        if depth_std_um > limit:
            raise SafetyError(f"depth uncertainty {depth_std_um:.2f} um exceeds {limit:.2f} um")
