"""Typed parameters of the simulated scene. Every physical value carries its unit in its name."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.units import Seconds, Um
from sim.head import HeadConfig


class Motility(str, Enum):
    """WHO 2021 motility categories (progressive speed thresholds 25 and 5 um/s)."""

    RAPID = "rapid_progressive"
    SLOW = "slow_progressive"
    NON_PROGRESSIVE = "non_progressive"
    IMMOTILE = "immotile"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Morphology(_Strict):
    """Human sperm geometry and optical contrast (refractive-index excess over the medium)."""

    head_length_um: Um = Field(4.4, gt=0)
    head_width_um: Um = Field(2.8, gt=0)
    head_thickness_um: Um = Field(1.0, gt=0)
    midpiece_length_um: Um = Field(4.4, gt=0)
    midpiece_diameter_um: Um = Field(0.9, gt=0)
    principal_length_um: Um = Field(45.0, gt=0)
    principal_diameter_um: Um = Field(0.5, gt=0)
    end_diameter_um: Um = Field(0.2, gt=0)
    nucleus_dn: float = Field(0.095, gt=0, lt=0.5, description="index excess of the condensed nucleus")
    acrosome_dn: float = Field(0.060, gt=0, lt=0.5)
    midpiece_dn: float = Field(0.020, gt=0, lt=0.5, description="index excess of the midpiece (mitochondrial sheath)")
    tail_dn: float = Field(0.020, gt=0, lt=0.5, description="index excess of the principal piece")
    absorption_per_um: float = Field(0.012, ge=0, lt=1, description="amplitude absorption per um of flagellum")
    size_jitter: float = Field(0.06, ge=0, lt=0.5, description="relative s.d. of sizes between cells")
    head: HeadConfig = Field(default_factory=HeadConfig, description="head shapes, anatomy and optics (sim/head.py)")


class OpticsConfig(_Strict):
    """Microscope geometry of the twin (the objective itself is the rig's ``objective``)."""

    microscope: Literal["inverted", "upright"] = Field(
        "inverted", description="inverted: objective below the dish, light travelling down (the reference rig and "
                                "ICSI rigs); upright: objective above. Sets the sign of phase contrast across focus")


class MotilityKinematics(_Strict):
    """Ranges (uniform) for one motility class."""

    path_speed_um_s: tuple[float, float]
    beat_hz: tuple[float, float]
    alh_um: tuple[float, float]
    curvature_per_um: tuple[float, float]


DEFAULT_KINEMATICS: dict[Motility, MotilityKinematics] = {
    Motility.RAPID: MotilityKinematics(path_speed_um_s=(32, 60), beat_hz=(14, 26), alh_um=(3, 6),
                                       curvature_per_um=(0.0, 0.004)),
    Motility.SLOW: MotilityKinematics(path_speed_um_s=(9, 20), beat_hz=(10, 18), alh_um=(2, 4),
                                      curvature_per_um=(0.0, 0.01)),
    Motility.NON_PROGRESSIVE: MotilityKinematics(path_speed_um_s=(2, 6), beat_hz=(8, 14), alh_um=(1, 3),
                                                 curvature_per_um=(0.25, 0.5)),
    Motility.IMMOTILE: MotilityKinematics(path_speed_um_s=(0, 0), beat_hz=(0, 0), alh_um=(0, 0),
                                          curvature_per_um=(0, 0)),
}


class PipetteConfig(_Strict):
    """A bent aspiration micropipette: the last segment runs parallel to the dish floor."""

    inner_diameter_um: Um = Field(6.0, ge=2, le=20)
    wall_um: Um = Field(1.0, gt=0, le=5)
    taper_length_um: Um = Field(60.0, gt=0, description="length over which the outer diameter doubles")
    visible_length_um: Um = Field(320.0, gt=0)
    yaw_deg: float = Field(0.0, ge=-180, le=180, description="direction of the pipette body from its tip")
    glass_dn: float = Field(0.135, gt=0, lt=1)
    wall_loss: float = Field(0.55, ge=0, le=1, description="light refracted out of the NA at the steep wall")


class FlowConfig(_Strict):
    """Hydraulics from the pump to the tip opening.

    The syringe rate reaches the tip through tubing with compliance and a back leak; the steady
    fraction and the time constant are effective parameters of the rig, not of the pump.
    """

    tip_flow_fraction: float = Field(0.001, gt=0, le=1)
    line_time_constant_s: Seconds = Field(0.25, ge=0)
    confined_swim_factor: float = Field(0.3, ge=0, le=1, description="swimming speed kept inside the pipette")


class SceneConfig(_Strict):
    """The sample: a dish of diluted sperm in medium, debris, and the pipette."""

    n_sperm: int = Field(12, ge=0, le=2000)
    motility_mix: dict[Motility, float] = Field(
        default_factory=lambda: {Motility.RAPID: 0.45, Motility.SLOW: 0.2, Motility.NON_PROGRESSIVE: 0.1,
                                 Motility.IMMOTILE: 0.25}
    )
    field_half_size_um: tuple[Um, Um] = (220.0, 150.0)
    periodic: bool = Field(True, description="the field repeats: cells leaving it re-enter opposite (World only)")
    chamber_height_um: Um = Field(40.0, gt=2, description="height of the simulated lower part of the drop")
    surface_fraction: float = Field(0.7, ge=0, le=1, description="motile cells bound to the floor (the rest swim"
                                    " in the bulk, crossing planes)")
    surface_height_median_um: Um = Field(3.0, gt=0, description="median height of a surface-bound swimmer's path")
    surface_height_gsd: float = Field(1.6, ge=1, description="geometric s.d. of those heights (log-normal)")
    surface_height_range_um: tuple[Um, Um] = Field((1.2, 12.0), description="heights kept from that distribution")
    surface_wobble_um: tuple[Um, Um] = Field((0.3, 1.0), description="amplitude of the slow pitching toward and away")
    surface_wobble_period_s: tuple[Seconds, Seconds] = (1.0, 4.0)
    surface_relax_s: Seconds = Field(0.5, gt=0, description="time a bound swimmer takes back to its height")
    surface_escape_per_s: float = Field(0.03, ge=0, description="rate at which a bound swimmer leaves the floor")
    bulk_pitch_sd_rad: float = Field(0.3, ge=0, description="s.d. of a bulk swimmer's angle to the floor")
    helical_fraction: float = Field(0.045, ge=0, le=1, description="bulk swimmers on well-defined helices")
    helix_radius_um: tuple[Um, Um] = (0.5, 3.0)
    helix_hz: tuple[float, float] = (3.0, 20.0)
    settled_fraction: float = Field(0.8, ge=0, le=1, description="immotile cells lying on the floor")
    sedimentation_um_s: float = Field(0.2, ge=0, description="sinking speed of an immotile cell")
    rotational_diffusion_rad2_s: float = Field(0.02, ge=0)
    translational_diffusion_um2_s: float = Field(0.05, ge=0)
    roll_hz_per_beat_hz: float = Field(0.4, ge=0, description="head roll rate relative to beat frequency")
    n_debris: int = Field(30, ge=0)
    morphology: Morphology = Field(default_factory=Morphology)
    optics: OpticsConfig = Field(default_factory=OpticsConfig)
    kinematics: dict[Motility, MotilityKinematics] = Field(default_factory=lambda: dict(DEFAULT_KINEMATICS))
    swim_speed_scale: float = Field(1.0, ge=0, le=5, description="multiplies every class's path speed (a sample"
                                    " faster or slower than the WHO ranges above; robustness sweeps)")
    pipette: PipetteConfig = Field(default_factory=PipetteConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)
    step_s: Seconds = Field(0.005, gt=0, le=0.02, description="physics integration step (head motion per step < 0.4 um)")
    wave_number_per_tail: float = Field(1.1, gt=0, description="flagellar wavelengths along the tail")
    beat_angle_rad: tuple[float, float] = (0.25, 1.0)

    def kinematics_of(self, motility: Motility) -> MotilityKinematics:
        """The class's kinematics with ``swim_speed_scale`` applied to its path speeds."""
        kin = self.kinematics[motility]
        if self.swim_speed_scale == 1.0:
            return kin
        lo, hi = kin.path_speed_um_s
        return kin.model_copy(update={"path_speed_um_s": (lo * self.swim_speed_scale, hi * self.swim_speed_scale)})

    @model_validator(mode="after")
    def _mix_sums(self) -> SceneConfig:
        total = sum(self.motility_mix.values())
        if any(v < 0 for v in self.motility_mix.values()) or total <= 0:
            raise ValueError("motility_mix needs non-negative weights with a positive sum")
        return self
