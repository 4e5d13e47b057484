"""Scripted aspiration attempts on the bare physics (no perception, no controller).

Used to check the twin against the paper's observations: aspiration works when the tip and the cell
share a depth and fails in the paper's ways otherwise (passes beneath, swept away, escapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from sim.config import Motility, SceneConfig
from sim.flow import UM3_PER_NL
from sim.scene import Debris, PipettePose, Scene
from sim.sperm import Habitat, sample_sperm


class Outcome(str, Enum):
    SUCCESS = "success"
    PASSED_BENEATH = "passed_beneath"  # depth mismatch: the cell swims under/over the pipette
    SWEPT_OUT = "swept_out"  # aspirated too fast: carried out of the field of view
    ESCAPED = "escaped"  # turned away before the flow caught it


@dataclass
class AttemptResult:
    outcome: Outcome
    time_to_capture_s: float | None
    axial_um: float


def aspiration_attempt(seed: int, z_offset_um: float, motility: Motility = Motility.RAPID,
                       pump_rate_nl_s: float = 1.2, start_distance_um: float = 30.0,
                       pump_on_distance_um: float = 16.0, retain_limit_um: float = 120.0,
                       duration_s: float = 4.0, track_lag_s: float = 0.05, cell_height_um: float | None = 9.0,
                       cfg: SceneConfig | None = None) -> AttemptResult:
    """A cell swims toward the opening; the tip's axis sits ``z_offset_um`` above the cell's path.

    A motile cell is bound to the floor at ``cell_height_um`` (high enough by default that the floor does
    not limit where the tip may go), with its own slow pitching about that height; an immotile one lies on
    the floor (``cell_height_um=None``). The pump starts when the head is ``pump_on_distance_um`` from the
    opening (timing the aspiration while the cell swims toward the tip, as the paper recommends) and stops
    once the head is inside. Success: the head is in the pipette and still within ``retain_limit_um`` (the
    field of view). The tip follows the head's lateral (y) position with a first-order lag
    ``track_lag_s``, standing in for ideal XY visual servoing, so that depth is the variable under test.
    """
    cfg = cfg or SceneConfig(n_sperm=0, n_debris=0)
    rng = np.random.default_rng(seed)
    scene = Scene(cfg, seed)
    cell = sample_sperm(0, motility, cfg.kinematics[motility], cfg, rng)
    cell.path_pos_um[:2] = [-start_distance_um, rng.normal(0.0, 1.0)]
    if cell_height_um is None:
        cell.path_pos_um[2] = 0.5 * cfg.morphology.head_thickness_um * cell.scale
        cell.settle()
    else:
        cell.habitat, cell.height_um = Habitat.SURFACE, cell_height_um
        cell.path_pos_um[2] = cell_height_um + cell.wobble_um * np.sin(cell.wobble_phase)
    cell.yaw_rad = float(rng.normal(0.0, 0.08))
    cell.curvature_per_um = float(rng.uniform(-1, 1) * 0.004)
    scene.sperm = [cell]
    path_z = cell_height_um if cell_height_um is not None else float(cell.path_pos_um[2])
    tip = np.array([0.0, 0.0, path_z + z_offset_um])
    pipette = PipettePose(tip, np.array([1.0, 0.0, 0.0]))
    dt = cfg.step_s
    pump = 0.0
    t = 0.0
    t_capture = None
    stop_at = None
    while t < duration_s:
        head = cell.head_center_um()
        dist = float(np.linalg.norm(head - tip))
        if pump == 0.0 and t_capture is None and dist < pump_on_distance_um:
            pump = pump_rate_nl_s
        if cell.captured and t_capture is None:
            t_capture = t
            stop_at = t + 0.4  # the controller keeps aspirating this long after the entry, then stops
        if stop_at is not None and t >= stop_at:
            pump = 0.0
        if stop_at is not None and t >= stop_at + 1.0 or not cell.captured and head[0] > tip[0] + 15.0:
            break  # the line has emptied after the stop, or the cell has swum well past the opening
        if not cell.captured and track_lag_s > 0:
            tip[1] += (head[1] - tip[1]) * (1.0 - np.exp(-dt / track_lag_s))
        scene.step(dt, pipette, pump)
        t += dt
    if cell.captured:
        outcome = Outcome.SUCCESS if cell.capture_axial_um <= retain_limit_um else Outcome.SWEPT_OUT
        return AttemptResult(outcome, t_capture, cell.capture_axial_um)
    head = cell.head_center_um()
    passed = head[0] > tip[0]
    return AttemptResult(Outcome.PASSED_BENEATH if passed else Outcome.ESCAPED, None, 0.0)


def capture_curve(offsets_um: Sequence[float], n: int, seed: int = 0, motility: Motility = Motility.RAPID,
                  **kwargs) -> dict[float, dict[str, float]]:
    """Fraction of each outcome over ``n`` attempts at each tip-to-path misalignment (um, + = tip above)."""
    curve = {}
    for dz in offsets_um:
        outcomes = [aspiration_attempt(seed * 100_003 + i, float(dz), motility, **kwargs).outcome for i in range(n)]
        curve[float(dz)] = {o.value: outcomes.count(o) / n for o in Outcome}
    return curve


def flow_speed_um_s(distance_um: float, pump_rate_nl_s: float, cfg: SceneConfig | None = None) -> float:
    """Steady sink speed at ``distance_um`` from the opening far from the floor, for documentation and tests."""
    cfg = cfg or SceneConfig()
    q = pump_rate_nl_s * UM3_PER_NL * cfg.flow.tip_flow_fraction
    r = max(distance_um, 0.5 * cfg.pipette.inner_diameter_um)
    return q / (4 * np.pi * r**2)


#: where :func:`round_debris_field` puts its five heads and six spheres (um from the view's centre): apart
#: enough that no two blobs touch at 40x
FIELD_HEADS_UM = np.array([[-25.0, -20.0], [20.0, -22.0], [-22.0, 18.0], [24.0, 20.0], [0.0, -5.0]])
FIELD_SPHERES_UM = np.array([[-8.0, 12.0], [10.0, 8.0], [-12.0, -30.0], [14.0, -8.0], [0.0, 26.0], [30.0, 0.0]])


def round_debris_field(seed: int, plane_um: float = 10.0, sphere_dz_um: Sequence[float] | None = None,
                       sphere_radius_um: Sequence[float] | None = None) -> Scene:
    """Five immotile heads lying flat at ``plane_um`` and six spheres as wide as a head (radius 1.3-1.7 um,
    weakly absorbing phase objects) within 1 um of that plane, at :data:`FIELD_HEADS_UM` and
    :data:`FIELD_SPHERES_UM`: what a head detector must tell apart by shape alone. Sphere heights and radii
    are drawn from ``seed`` unless given."""
    rng = np.random.default_rng(seed)
    cfg = SceneConfig(n_sperm=0, n_debris=0)
    scene = Scene(cfg, seed=seed)
    for i, (x, y) in enumerate(FIELD_HEADS_UM):
        cell = sample_sperm(i, Motility.IMMOTILE, cfg.kinematics[Motility.IMMOTILE], cfg, rng)
        cell.yaw_rad = float(rng.uniform(-np.pi, np.pi))
        cell.roll_rad = 0.0
        cell.path_pos_um[:] = [x, y, plane_um]
        scene.sperm.append(cell)
    n = len(FIELD_SPHERES_UM)
    dz = np.asarray(sphere_dz_um) if sphere_dz_um is not None else rng.uniform(-1.0, 1.0, n)
    radius = np.asarray(sphere_radius_um) if sphere_radius_um is not None else rng.uniform(1.3, 1.7, n)
    scene.debris = Debris(pos_um=np.column_stack([FIELD_SPHERES_UM, plane_um + dz]), radius_um=radius,
                          dn=np.full(n, 0.03), absorption=np.full(n, 0.08))
    return scene
