"""Flow into the pipette opening and the aspiration of cells.

The pipette is a thin-walled tube (wall a third of the inner radius), so fluid reaches its opening from
all around, behind the opening's plane too, and beyond a few radii the opening draws like a point sink
(speed ``Q / (4 pi r^2)``, ``r`` floored at the inner radius; Happel & Brenner, Low Reynolds number
hydrodynamics, ch. 4; Batchelor 1967, ch. 2.5). The dish floor bounds the fluid: an image sink mirrored
below the floor keeps fluid from crossing it (exact for a free-slip wall; a no-slip floor slows the flow
close to it further, which is not modelled). Inside the bore the mean Poiseuille speed
``Q / (pi r_i^2)`` carries a captured cell along the axis. The flow at the tip lags the pump through the
line's compliance (first order, time constant ``line_time_constant_s``).
"""

from __future__ import annotations

import numpy as np

UM3_PER_NL = 1e6


def sink_velocity(points_um: np.ndarray, tip_um: np.ndarray, axis: np.ndarray, inner_radius_um: float,
                  outer_radius_um: float, q_um3_s: float) -> np.ndarray:
    """Fluid velocity (um/s) at ``points_um`` (N, 3), z up from the floor. ``axis`` is the unit vector from
    the tip into the pipette; points inside the bore move along it, points in the glass not at all."""
    pts = np.atleast_2d(points_um)
    rel = pts - tip_um[None, :]
    axial = rel @ axis
    radial = np.linalg.norm(rel - axial[:, None] * axis[None, :], axis=1)
    image = rel.copy()
    image[:, 2] = pts[:, 2] + tip_um[2]  # from the sink mirrored below the floor
    v = np.zeros_like(rel)
    for r_vec in (rel, image):
        dist = np.linalg.norm(r_vec, axis=1)
        r = np.maximum(dist, inner_radius_um)
        v -= (q_um3_s / (4 * np.pi * r[:, None] ** 2)) * r_vec / np.maximum(dist[:, None], 1e-9)
    behind = axial >= 0
    v[behind & (radial < outer_radius_um)] = 0.0
    inside = behind & (radial < inner_radius_um)
    v[inside] = axis[None, :] * q_um3_s / (np.pi * inner_radius_um**2)
    return v


def lagged_flow(current_um3_s: float, target_um3_s: float, dt_s: float, tau_s: float) -> float:
    """One step of the line's first-order response toward the pump's commanded flow."""
    if tau_s <= 0:
        return target_um3_s
    return current_um3_s + (target_um3_s - current_um3_s) * (1.0 - np.exp(-dt_s / tau_s))
