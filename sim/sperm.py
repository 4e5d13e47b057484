"""A swimming human sperm cell: 3-D path kinematics and an inextensible beating flagellum.

The flagellum follows the tangent-angle model of a travelling wave, ``alpha(s, t) = alpha_max(s) *
cos(k s - 2 pi f t)``, with amplitude growing along the tail; integrating the tangent keeps its length
fixed. The beat plane rolls about the swimming direction, so parts of the tail leave the focal plane.
The head is a flattened ellipsoid whose projected width and thickness follow the roll.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.config import Morphology, Motility, MotilityKinematics, SceneConfig
from sim.head import HeadAnatomy, sample_head

TAIL_SAMPLE_UM = 0.25  # arclength between rendered tail samples (below the resolution limit)


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
    captured: bool = False  # head inside the pipette
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
        return np.array([p[0] + swing * lx, p[1] + swing * ly, p[2] + swing * lz])

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
        d_rot = cfg.rotational_diffusion_rad2_s if self.motility != Motility.IMMOTILE else 0.0
        if d_rot:
            sd = math.sqrt(2 * d_rot * dt_s)
            self.yaw_rad += sd * rng.standard_normal()
            self.pitch_rad += sd * rng.standard_normal()
        z = self.path_pos_um[2]
        half_t = 0.5 * cfg.morphology.head_thickness_um * self.scale
        if v > 0 and z - half_t < cfg.wall_range_um:  # hydrodynamic attraction toward the floor
            self.pitch_rad -= cfg.wall_attraction_rad_s * dt_s
        self.pitch_rad = min(max(float(self.pitch_rad), -0.6), 0.6)
        hx, hy, hz = self._heading()
        fx, fy, fz = flow_um_s
        mx, my, mz = v * hx + fx, v * hy + fy, v * hz + fz
        gap = max(z - half_t - cfg.floor_gap_um, 0.0)
        if v > 0 and gap < cfg.wall_range_um:
            # Hydrodynamic wall attraction of a pusher swimmer: ~ swim speed, decays as 1/h^2.
            mz -= cfg.wall_attraction_um_s * (v / 50.0) / (1.0 + (gap / 2.0) ** 2)
        if cfg.translational_diffusion_um2_s:
            c = math.sqrt(2 * cfg.translational_diffusion_um2_s / dt_s)
            nx, ny, nz = rng.standard_normal(3)
            mx, my, mz = mx + c * nx, my + c * ny, mz + c * nz
        px, py, pz = self.path_pos_um
        self.path_pos_um = np.array([px + mx * dt_s, py + my * dt_s, pz + mz * dt_s])
        floor = half_t + cfg.floor_gap_um  # near-wall swimmers hover at a hydrodynamic equilibrium height
        ceiling = cfg.chamber_height_um - half_t
        if self.path_pos_um[2] < floor:
            self.path_pos_um[2] = floor
            self.pitch_rad = max(self.pitch_rad, 0.0) * 0.5  # slides along the floor
        elif self.path_pos_um[2] > ceiling:
            self.path_pos_um[2] = ceiling
            self.pitch_rad = min(self.pitch_rad, 0.0)
        self.beat_phase = (self.beat_phase + 2 * np.pi * self.beat_hz * dt_s) % (2 * np.pi)
        near_floor = self.path_pos_um[2] < floor + 2.0
        roll = self.roll_hz * (0.3 if near_floor else 1.0)  # walls damp rolling
        self.roll_rad = (self.roll_rad + 2 * np.pi * roll * dt_s) % (2 * np.pi)
        head = self.head_center_um()
        if self._last_head is not None:
            self.head_velocity_um_s = (head - self._last_head) / dt_s
        self._last_head = head

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
    """Draw one cell of the given class with random position, orientation and kinematics."""
    hx, hy = cfg.field_half_size_um
    half_t = 0.5 * cfg.morphology.head_thickness_um
    floor = half_t + cfg.floor_gap_um
    if rng.random() < cfg.near_floor_fraction:
        z = floor + rng.uniform(0.0, 4.0)
    else:
        z = rng.uniform(floor, cfg.chamber_height_um - half_t)
    pos = np.array([center_um[0] + rng.uniform(-hx, hx), center_um[1] + rng.uniform(-hy, hy), z])
    beat = rng.uniform(*kin.beat_hz)
    return Sperm(
        id=sid,
        motility=motility,
        path_pos_um=pos,
        yaw_rad=rng.uniform(-np.pi, np.pi),
        pitch_rad=rng.normal(0, 0.15) if motility != Motility.IMMOTILE else 0.0,
        path_speed_um_s=rng.uniform(*kin.path_speed_um_s),
        beat_hz=beat,
        alh_um=rng.uniform(*kin.alh_um),
        curvature_per_um=rng.uniform(*kin.curvature_per_um) * rng.choice([-1.0, 1.0]),
        beat_angle_rad=rng.uniform(*cfg.beat_angle_rad) if beat > 0 else 0.0,
        scale=float(np.clip(rng.normal(1.0, cfg.morphology.size_jitter), 0.8, 1.2)),
        beat_phase=rng.uniform(0, 2 * np.pi),
        roll_rad=rng.uniform(0, 2 * np.pi),
        roll_hz=beat * cfg.roll_hz_per_beat_hz,
        head=sample_head(cfg.morphology.head, rng.spawn(1)[0]),  # spawned: the cell's other draws stay as they were
    )
