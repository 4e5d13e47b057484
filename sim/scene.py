"""The sample: sperm, debris and the flow from the pipette, advanced in fixed physics steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config import Motility, SceneConfig
from sim.flow import UM3_PER_NL, lagged_flow, sink_velocity
from sim.sperm import Sperm, sample_sperm


@dataclass
class Debris:
    pos_um: np.ndarray  # (N, 3)
    radius_um: np.ndarray  # (N,)
    dn: np.ndarray  # (N,)
    absorption: np.ndarray  # (N,) per um


@dataclass
class PipettePose:
    """Where the pipette is this instant, in the sample frame."""

    tip_um: np.ndarray  # centre of the opening (3,)
    axis: np.ndarray  # unit vector from the tip into the pipette (3,)


def allocate_counts(n: int, mix: dict[Motility, float]) -> list[Motility]:
    """Deterministic class list of length n with proportions from ``mix`` (largest remainder)."""
    total = sum(mix.values())
    exact = {m: n * w / total for m, w in mix.items()}
    counts = {m: int(np.floor(v)) for m, v in exact.items()}
    for m in sorted(exact, key=lambda m: exact[m] - counts[m], reverse=True)[: n - sum(counts.values())]:
        counts[m] += 1
    return [m for m in mix for _ in range(counts[m])]


class Scene:
    """Cells and debris in the dish; ``step`` integrates motion, flow and aspiration."""

    def __init__(self, cfg: SceneConfig, seed: int, center_um: tuple[float, float] = (0.0, 0.0)) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.t_s = 0.0
        self.tip_flow_um3_s = 0.0
        self._last_pipette: PipettePose | None = None
        classes = allocate_counts(cfg.n_sperm, cfg.motility_mix)
        self.rng.shuffle(classes)
        self.sperm: list[Sperm] = [
            sample_sperm(i, m, cfg.kinematics_of(m), cfg, self.rng, center_um) for i, m in enumerate(classes)
        ]
        n = cfg.n_debris
        hx, hy = cfg.field_half_size_um
        rad = self.rng.uniform(0.2, 0.8, n)
        z = np.where(self.rng.random(n) < 0.8, rad + 0.1, self.rng.uniform(0, cfg.chamber_height_um, n))
        self.debris = Debris(
            pos_um=np.stack([center_um[0] + self.rng.uniform(-hx, hx, n),
                             center_um[1] + self.rng.uniform(-hy, hy, n), z], axis=1),
            radius_um=rad,
            dn=self.rng.uniform(0.01, 0.05, n),
            absorption=self.rng.uniform(0.01, 0.06, n),
        )

    def wrap_about(self, center_xy_um: tuple[float, float]) -> None:
        """Periodic sample: a free cell or debris particle further than the field half-size from
        ``center_xy_um`` (where the stage looks) re-enters on the opposite side, so the dish has the same
        density wherever the stage goes and cells that swim away are replaced."""
        if not self.cfg.periodic:
            return
        half = np.asarray(self.cfg.field_half_size_um)
        c = np.asarray(center_xy_um, dtype=float)
        for cell in self.sperm:
            if cell.captured:
                continue
            shift = -2 * half * np.round((cell.path_pos_um[:2] - c) / (2 * half))
            if shift.any():
                cell.path_pos_um[:2] += shift
                if cell._last_head is not None:
                    cell._last_head[:2] += shift
        pos = self.debris.pos_um
        if pos.size:
            pos[:, :2] -= 2 * half * np.round((pos[:, :2] - c) / (2 * half))

    def add_sperm(self, sperm: Sperm) -> None:
        self.sperm.append(sperm)

    def step(self, dt_s: float, pipette: PipettePose | None, pump_rate_nl_s: float) -> None:
        cfg = self.cfg
        target = pump_rate_nl_s * UM3_PER_NL * cfg.flow.tip_flow_fraction
        self.tip_flow_um3_s = lagged_flow(self.tip_flow_um3_s, target, dt_s, cfg.flow.line_time_constant_s)
        q = self.tip_flow_um3_s
        r_i = 0.5 * cfg.pipette.inner_diameter_um
        r_o = r_i + cfg.pipette.wall_um
        free = []
        for cell in self.sperm:
            if cell.captured and pipette is not None:
                self._move_inside(cell, dt_s, pipette, q, r_i)
            else:
                free.append(cell)
        if not free:
            self._last_pipette = pipette
            self.t_s += dt_s
            return
        flows = np.zeros((len(free), 3))
        if pipette is not None and q != 0.0:  # one call for all cells: per cell it was a tenth of a frame
            flows = sink_velocity(np.array([c.head_center_um() for c in free]), pipette.tip_um, pipette.axis,
                                  r_i, r_o, q)
        before = np.array([c.head_center_um() for c in free])
        for cell, flow in zip(free, flows):
            cell.step(dt_s, self.rng, cfg, flow)
        if pipette is not None:
            # where the heads were against the opening as it was then (the stage moves the pipette too)
            last = self._last_pipette or pipette
            axial_before = (before - last.tip_um[None, :]) @ last.axis
            self._meet_glass(free, axial_before, pipette, r_i, r_o)
        self._last_pipette = pipette
        self.t_s += dt_s

    def _meet_glass(self, cells: list[Sperm], axial_before: np.ndarray, pipette: PipettePose, r_i: float,
                    r_o: float) -> None:
        """Capture and steric contact with the pipette, for heads near it (a few per step at most).

        A head that crosses the opening's plane enters when all of it fits the bore: its centre lies within
        the inner radius less the head's half-extent toward the rim. A head that would strike the rim's end
        face is deflected by it, as the tapered nose of the head slides off a rounded edge: into the bore
        when it meets the inner half of the face, out over the glass when it meets the outer half. A head
        beside the glass behind the opening is pushed out of it. So a cell whose path is misaligned with
        the opening's axis by more than about the middle of the wall passes beneath or over the pipette;
        only the sink flow, while the cell is in front of the opening, draws it in from farther.
        """
        axis, tip = pipette.axis, pipette.tip_um
        taper = self.cfg.pipette.taper_length_um
        morph = self.cfg.morphology
        heads = np.array([c.head_center_um() for c in cells])
        rel = heads - tip[None, :]
        axial = rel @ axis
        radial_v = rel - axial[:, None] * axis[None, :]
        radial = np.linalg.norm(radial_v, axis=1)
        reach = r_o * (1.0 + np.clip(axial, 0.0, None) / taper) + 1.5 * morph.head_length_um
        for i in np.flatnonzero((axial >= 0.0) & (radial < reach)):
            cell = cells[i]
            u = radial_v[i] / radial[i] if radial[i] > 1e-9 else np.cross(axis, [0.0, 0.0, 1.0])
            ext = cell.head_half_extent_um(morph, u)
            crossed = axial_before[i] < 0.0
            if radial[i] < r_i - ext and (crossed or axial[i] < 3.0):
                cell.captured = True
                cell.capture_axial_um = float(axial[i])
                cell.head_velocity_um_s = np.zeros(3)
                cell.helix_radius_um = 0.0  # the bore straightens its path
            elif crossed and radial[i] < 0.5 * (r_i + r_o):  # its nose meets the rim's inner half: slides in
                cell.shift((radial[i] - (r_i - ext) + 0.01) * -u)
                cell.captured, cell.capture_axial_um = True, float(axial[i])
                cell.head_velocity_um_s = np.zeros(3)
                cell.helix_radius_um = 0.0
            elif crossed and radial[i] < r_o + ext:  # the outer half: deflected out over the glass
                cell.shift((r_o + ext - radial[i]) * u)
            else:
                wall = r_o * (1.0 + axial[i] / taper) + ext
                if radial[i] < wall:  # beside the glass behind the opening: pushed out of it
                    cell.shift((wall - radial[i]) * u)

    def place_in_pipette(self, cell: Sperm, pipette: PipettePose, axial_um: float) -> None:
        """Put ``cell`` inside the bore, its head ``axial_um`` past the opening on the axis, as the flow
        leaves a cell it has drawn in (to render a head seen through the glass)."""
        cell.captured, cell.capture_axial_um = True, float(axial_um)
        cell.helix_radius_um = 0.0
        self._move_inside(cell, 0.0, pipette, 0.0, 0.5 * self.cfg.pipette.inner_diameter_um)

    def _move_inside(self, cell: Sperm, dt_s: float, pipette: PipettePose, q: float, r_i: float) -> None:
        """A captured head moves along the axis with the mean flow plus its own, confined swimming."""
        swim = cell.path_speed_um_s * self.cfg.flow.confined_swim_factor * float(cell.heading() @ pipette.axis)
        speed = q / (np.pi * r_i**2) + swim
        cell.capture_axial_um += speed * dt_s
        if cell.capture_axial_um < 0.0:  # pushed back out of the opening: free again
            cell.captured = False
            cell.path_pos_um = pipette.tip_um - 1.0 * pipette.axis
            return
        cell.beat_phase = (cell.beat_phase + 2 * np.pi * cell.beat_hz * dt_s) % (2 * np.pi)
        # Align with the pipette and sit on its axis.
        cell.yaw_rad = float(np.arctan2(-pipette.axis[1], -pipette.axis[0])) if swim < 0 else float(
            np.arctan2(pipette.axis[1], pipette.axis[0]))
        cell.pitch_rad = 0.0
        head = pipette.tip_um + cell.capture_axial_um * pipette.axis
        cell.path_pos_um = head - 0.5 * cell.alh_um * np.sin(cell.beat_phase) * cell.lateral()
        cell.head_velocity_um_s = speed * pipette.axis
