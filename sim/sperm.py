"""A swimming human sperm cell: 3-D path kinematics and an inextensible beating flagellum.

The flagellum follows the tangent-angle model of a travelling wave, ``alpha(s, t) = alpha_max(s) *
cos(k s - 2 pi f t)``, with amplitude growing along the tail; integrating the tangent keeps its length
fixed. The beat plane rolls about the swimming direction, so parts of the tail leave the focal plane.
The head is a flattened ellipsoid whose projected width and thickness follow the roll.

Where a cell is in the dish sets how it moves in z (its :class:`Habitat`): motile cells are either bound
to the floor at a height of their own (hydrodynamic surface accumulation), pitching slowly toward and
away from it, or swim through the bulk at an angle to the floor (a few on helices) until the floor
captures them; immotile cells lie on the floor or are still sinking onto it. docs/sim.md gives the
sources of each number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from sim.config import Morphology, Motility, MotilityKinematics, SceneConfig
from sim.head import HeadAnatomy, sample_head

TAIL_SAMPLE_UM = 0.25  # arclength between rendered tail samples (below the resolution limit)
MIN_SWIM_GAP_UM = 0.5  # a swimming head keeps this clear of the floor (closer only in viscous media)


class Habitat(str, Enum):
    """Where a cell is, which sets its motion in z."""

    SURFACE = "surface"  # motile, bound to the floor at its own height
    BULK = "bulk"  # motile, swimming through the drop at an angle to the floor
    SETTLED = "settled"  # immotile, lying flat on the floor
    SINKING = "sinking"  # immotile, still settling through the medium


@dataclass
class Sperm:
    """State of one cell. Positions in the sample frame (um, z up from the dish floor)."""

    id: int
    motility: Motility
    path_pos_um: np.ndarray  # point on the average path (3,)
    yaw_rad: float
    pitch_rad: float
    path_speed_um_s: float
    beat_hz: float
    alh_um: float
    curvature_per_um: float
    beat_angle_rad: float
    scale: float  # morphological size factor
    beat_phase: float = 0.0
    roll_rad: float = 0.0
    roll_hz: float = 0.0
    habitat: Habitat = Habitat.BULK
    height_um: float = 0.0  # path height a surface-bound swimmer keeps (drawn for every motile cell)
    wobble_um: float = 0.0  # amplitude of its slow pitching toward and away from the floor
    wobble_hz: float = 0.0
    wobble_phase: float = 0.0
    helix_radius_um: float = 0.0  # a helical bulk swimmer's head circles its path at this radius
    helix_hz: float = 0.0
    helix_phase: float = 0.0
    captured: bool = False  # head inside the pipette
    # the lowest height of the head's centre: half the head's extent in z in its current pose. The glass
    # stops the beat's swing (steric contact): a head swung toward the floor slides along it instead of
    # passing into the glass (kept by :meth:`touch_floor`, each step)
    floor_contact_um: float = 0.0
    capture_axial_um: float = 0.0
    head_velocity_um_s: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _last_head: np.ndarray | None = None
    head: HeadAnatomy | None = None  # the head's shape and anatomy (its appearance: sim/head.py)

    # ----- kinematics ------------------------------------------------------------------------------------
    # Scalar maths (``math``) and plain tuples here: these run for every cell at every physics step and
    # for every rendered body part, where numpy's per-call overhead on 3-vectors was most of the cost. The
    # same IEEE operations in the same order, so the results are the same to the bit.
    def _heading(self) -> tuple[float, float, float]:
        cp = math.cos(self.pitch_rad)
        return cp * math.cos(self.yaw_rad), cp * math.sin(self.yaw_rad), math.sin(self.pitch_rad)

    def _lateral(self) -> tuple[float, float, float]:
        sy, cy = math.sin(self.yaw_rad), math.cos(self.yaw_rad)
        sp, cp = math.sin(self.pitch_rad), math.cos(self.pitch_rad)
        cr, sr = math.cos(self.roll_rad), math.sin(self.roll_rad)
        # e_lat = (-sy, cy, 0); e_up = heading x e_lat = (-sp cy, -sp sy, cp)
        return -cr * sy - sr * sp * cy, cr * cy - sr * sp * sy, sr * cp

    def heading(self) -> np.ndarray:
        return np.array(self._heading())

    def lateral(self) -> np.ndarray:
        """Unit vector in the beat plane, perpendicular to the heading (rotates with the roll)."""
        return np.array(self._lateral())

    def head_center_um(self) -> np.ndarray:
        swing = 0.5 * self.alh_um * math.sin(self.beat_phase)
        lx, ly, lz = self._lateral()
        p = self.path_pos_um
        x, y, z = p[0] + swing * lx, p[1] + swing * ly, p[2] + swing * lz
        if self.helix_radius_um:
            sy, cy = math.sin(self.yaw_rad), math.cos(self.yaw_rad)
            sp, cp = math.sin(self.pitch_rad), math.cos(self.pitch_rad)
            c, s = self.helix_radius_um * math.cos(self.helix_phase), self.helix_radius_um * math.sin(self.helix_phase)
            x, y, z = x - c * sy - s * sp * cy, y + c * cy - s * sp * sy, z + s * cp
        return np.array([x, y, max(z, self.floor_contact_um)])

    def touch_floor(self, morph: Morphology) -> None:
        """Set :attr:`floor_contact_um` for the head's pose now: half its extent along z, as the capture
        measures it (:meth:`head_half_extent_um`)."""
        self.floor_contact_um = self.head_half_extent_um(morph, (0.0, 0.0, 1.0))

    def head_direction(self) -> np.ndarray:
        """Unit vector from the neck to the tip of the head (yaws with the beat)."""
        alpha0 = 0.35 * self.beat_angle_rad * np.cos(self.beat_phase) if self.beat_hz > 0 else 0.0
        return np.cos(alpha0) * self.heading() + np.sin(alpha0) * self.lateral()

    def step(self, dt_s: float, rng: np.random.Generator, cfg: SceneConfig, flow_um_s: np.ndarray) -> None:
        """Advance by ``dt_s``: swim along the path, turn, beat, roll, drift with ``flow_um_s``."""
        if self.captured:
            return
        v = self.path_speed_um_s
        self.yaw_rad += self.curvature_per_um * v * dt_s
        if self.motility != Motility.IMMOTILE and cfg.rotational_diffusion_rad2_s:
            sd = math.sqrt(2 * cfg.rotational_diffusion_rad2_s * dt_s)
            self.yaw_rad += sd * rng.standard_normal()
            if self.habitat == Habitat.BULK:
                self.pitch_rad += sd * rng.standard_normal()
        z = float(self.path_pos_um[2])
        half_t = 0.5 * cfg.morphology.head_thickness_um * self.scale
        sink_um_s = 0.0
        if self.habitat == Habitat.SURFACE:
            self.wobble_phase = (self.wobble_phase + 2 * math.pi * self.wobble_hz * dt_s) % (2 * math.pi)
            goal = self.height_um + self.wobble_um * math.sin(self.wobble_phase)
            goal_rate = self.wobble_um * 2 * math.pi * self.wobble_hz * math.cos(self.wobble_phase)
            vz = (goal - z) / cfg.surface_relax_s + goal_rate  # held at its height by the wall's flow field
            self.pitch_rad = math.asin(min(max(vz / max(v, 1e-9), -0.5), 0.5))
            if rng.random() < cfg.surface_escape_per_s * dt_s:
                self.habitat = Habitat.BULK
                self.pitch_rad = rng.uniform(0.15, 0.5)
        elif self.habitat == Habitat.BULK:
            if z <= self.height_um and self.pitch_rad < 0 and not self.helix_radius_um:
                self.habitat = Habitat.SURFACE  # the floor captures a swimmer that reaches it
                self.wobble_phase = 0.0
            elif z <= self.height_um and self.pitch_rad < 0:
                self.pitch_rad = -self.pitch_rad  # a helical swimmer is turned away instead
            self.pitch_rad = min(max(float(self.pitch_rad), -1.2), 1.2)
        elif self.habitat == Habitat.SINKING:
            sink_um_s = cfg.sedimentation_um_s
        hx, hy, hz = self._heading()
        fx, fy, fz = flow_um_s
        mx, my, mz = v * hx + fx, v * hy + fy, v * hz + fz - sink_um_s
        if cfg.translational_diffusion_um2_s:
            c = math.sqrt(2 * cfg.translational_diffusion_um2_s / dt_s)
            nx, ny, nz = rng.standard_normal(3)
            mx, my, mz = mx + c * nx, my + c * ny, mz + c * nz
        px, py, pz = self.path_pos_um
        self.path_pos_um = np.array([px + mx * dt_s, py + my * dt_s, pz + mz * dt_s])
        floor = half_t + (MIN_SWIM_GAP_UM if v > 0 else 0.0)
        ceiling = cfg.chamber_height_um - half_t
        if self.path_pos_um[2] <= floor:
            self.path_pos_um[2] = floor
            self.pitch_rad = max(self.pitch_rad, 0.0)
            if self.habitat == Habitat.SINKING:
                self.settle()
        elif self.path_pos_um[2] > ceiling:
            self.path_pos_um[2] = ceiling
            self.pitch_rad = min(self.pitch_rad, 0.0)
        self.beat_phase = (self.beat_phase + 2 * np.pi * self.beat_hz * dt_s) % (2 * np.pi)
        self.roll_rad = (self.roll_rad + 2 * np.pi * self.roll_hz * dt_s) % (2 * np.pi)
        if self.helix_radius_um:
            self.helix_phase = (self.helix_phase + 2 * math.pi * self.helix_hz * dt_s) % (2 * math.pi)
        self.touch_floor(cfg.morphology)
        head = self.head_center_um()
        if self._last_head is not None:
            self.head_velocity_um_s = (head - self._last_head) / dt_s
        self._last_head = head

    def settle(self) -> None:
        """Lie flat on the floor: the flattened head face-down, no pitch."""
        self.habitat = Habitat.SETTLED
        self.pitch_rad = 0.0
        self.roll_rad = 0.0 if math.cos(self.roll_rad) >= 0 else math.pi

    def shift(self, delta_um: np.ndarray) -> None:
        """Move the cell bodily (pushed by the glass)."""
        self.path_pos_um = self.path_pos_um + delta_um
        if self._last_head is not None:
            self._last_head = self._last_head + delta_um

    def head_half_extent_um(self, morph: Morphology, direction: np.ndarray | tuple[float, float, float]) -> float:
        """Half the head's extent along the unit vector ``direction``: how close its centre may come to glass
        (or the floor, :meth:`touch_floor`, every physics step: scalar maths, as in the kinematics above)."""
        dx, dy, dz = (float(v) for v in direction)
        hx, hy, hz = self._heading()
        wx, wy, wz = self._lateral()
        a0 = 0.35 * self.beat_angle_rad * math.cos(self.beat_phase) if self.beat_hz > 0 else 0.0
        ca, sa = math.cos(a0), math.sin(a0)
        ex, ey, ez = ca * hx + sa * wx, ca * hy + sa * wy, ca * hz + sa * wz  # head_direction()
        nx, ny, nz = ey * wz - ez * wy, ez * wx - ex * wz, ex * wy - ey * wx  # e_h x e_w
        a = 0.5 * morph.head_length_um * self.scale * (dx * ex + dy * ey + dz * ez)
        b = 0.5 * morph.head_width_um * self.scale * (dx * wx + dy * wy + dz * wz)
        c = 0.5 * morph.head_thickness_um * self.scale * (dx * nx + dy * ny + dz * nz)
        return math.sqrt(a * a + b * b + c * c)

    # ----- geometry --------------------------------------------------------------------------------------
    def tail_points(self, morph: Morphology, n_waves: float,
                    beat_phase: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Centre-line samples of midpiece + principal piece (N, 3) and their cross-section areas (um^2), at
        the cell's beat phase or at ``beat_phase`` (a moment within the camera's exposure)."""
        phase = self.beat_phase if beat_phase is None else beat_phase
        s_mid = morph.midpiece_length_um * self.scale
        length = s_mid + morph.principal_length_um * self.scale
        n = max(2, int(length / TAIL_SAMPLE_UM))
        s = np.linspace(0.0, length, n)
        if self.beat_hz > 0 or self.motility != Motility.IMMOTILE:
            k = 2 * np.pi * n_waves / length
            amp = self.beat_angle_rad * (0.35 + 0.65 * s / length)
            alpha = amp * np.cos(k * s - phase)
        else:  # immotile: a frozen, gently curved tail
            alpha = 0.15 * np.sin(np.pi * s / length + phase)
        ds = np.diff(s, prepend=0.0)
        bx = -np.cumsum(np.cos(alpha) * ds)  # backwards from the neck, body frame
        by = np.cumsum(np.sin(alpha) * ds)
        head_length = self.head.length_um if self.head is not None else morph.head_length_um * self.scale
        neck = self.head_center_um() - 0.5 * head_length * self.head_direction()
        pts = neck[None, :] + bx[:, None] * self.heading()[None, :] + by[:, None] * self.lateral()[None, :]
        d_end = morph.end_diameter_um * self.scale
        d_pp = morph.principal_diameter_um * self.scale
        diam = np.where(
            s < s_mid,
            morph.midpiece_diameter_um * self.scale,
            d_pp + (d_end - d_pp) * np.clip((s - s_mid) / (length - s_mid), 0, 1),
        )
        return pts, np.pi / 4 * diam**2

    def head_projection(self, morph: Morphology) -> tuple[float, float, float, float]:
        """Projected head: (semi-length um, semi-width um, centre thickness um, in-plane angle rad)."""
        d = self.head_direction()
        a = 0.5 * morph.head_length_um * self.scale * np.hypot(d[0], d[1])
        b = 0.5 * morph.head_width_um * self.scale
        c = 0.5 * morph.head_thickness_um * self.scale
        b_eff = float(np.sqrt((b * np.cos(self.roll_rad)) ** 2 + (c * np.sin(self.roll_rad)) ** 2))
        # Path length through the centre; keeps the projected volume of the ellipsoid.
        thick = 2 * b * c / b_eff
        return float(max(a, 0.6 * b)), b_eff, float(thick), float(np.arctan2(d[1], d[0]))


def sample_sperm(sid: int, motility: Motility, kin: MotilityKinematics, cfg: SceneConfig,
                 rng: np.random.Generator, center_um: tuple[float, float] = (0.0, 0.0)) -> Sperm:
    """Draw one cell of the given class with random position, orientation, kinematics and habitat."""
    hx, hy = cfg.field_half_size_um
    beat = rng.uniform(*kin.beat_hz)
    scale = float(np.clip(rng.normal(1.0, cfg.morphology.size_jitter), 0.8, 1.2))
    half_t = 0.5 * cfg.morphology.head_thickness_um * scale
    lo, hi = cfg.surface_height_range_um
    height = float(np.clip(cfg.surface_height_median_um * cfg.surface_height_gsd ** rng.standard_normal(), lo, hi))
    cell = Sperm(
        id=sid,
        motility=motility,
        path_pos_um=np.array([center_um[0] + rng.uniform(-hx, hx), center_um[1] + rng.uniform(-hy, hy), 0.0]),
        yaw_rad=rng.uniform(-np.pi, np.pi),
        pitch_rad=0.0,
        path_speed_um_s=rng.uniform(*kin.path_speed_um_s),
        beat_hz=beat,
        alh_um=rng.uniform(*kin.alh_um),
        curvature_per_um=rng.uniform(*kin.curvature_per_um) * rng.choice([-1.0, 1.0]),
        beat_angle_rad=rng.uniform(*cfg.beat_angle_rad) if beat > 0 else 0.0,
        scale=scale,
        beat_phase=rng.uniform(0, 2 * np.pi),
        roll_rad=rng.uniform(0, 2 * np.pi),
        roll_hz=beat * cfg.roll_hz_per_beat_hz,
        height_um=height,
        wobble_um=rng.uniform(*cfg.surface_wobble_um),
        wobble_hz=1.0 / rng.uniform(*cfg.surface_wobble_period_s),
        wobble_phase=rng.uniform(0, 2 * np.pi),
        head=sample_head(cfg.morphology.head, rng.spawn(1)[0]),  # spawned: the cell's other draws stay as they were
    )
    if motility == Motility.IMMOTILE:
        if rng.random() < cfg.settled_fraction:
            cell.path_pos_um[2] = half_t
            cell.settle()
        else:
            cell.habitat = Habitat.SINKING
            cell.path_pos_um[2] = rng.uniform(half_t, cfg.chamber_height_um - half_t)
    elif rng.random() < cfg.surface_fraction:
        cell.habitat = Habitat.SURFACE
        cell.path_pos_um[2] = height + cell.wobble_um * math.sin(cell.wobble_phase)
    else:
        cell.habitat = Habitat.BULK
        cell.path_pos_um[2] = rng.uniform(height, cfg.chamber_height_um - half_t)
        cell.pitch_rad = float(np.clip(rng.normal(0.0, cfg.bulk_pitch_sd_rad), -1.2, 1.2))
        if rng.random() < cfg.helical_fraction:
            cell.helix_radius_um = rng.uniform(*cfg.helix_radius_um)
            cell.helix_hz = rng.uniform(*cfg.helix_hz)
            cell.helix_phase = rng.uniform(0, 2 * np.pi)
    cell.touch_floor(cfg.morphology)
    return cell
