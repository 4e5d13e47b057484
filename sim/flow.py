"""Flow into the pipette opening and the aspiration of cells.

Outside the glass the opening acts as a hemispherical sink: speed ``Q / (2 pi r^2)`` toward the opening
for points in front of it (``r`` floored at the inner radius), nothing behind the glass. Inside, the
mean Poiseuille speed ``Q / (pi r_i^2)`` carries a captured cell along the axis. The flow at the tip lags
the pump through the line's compliance (first order, time constant ``line_time_constant_s``).
"""

from __future__ import annotations

import numpy as np

UM3_PER_NL = 1e6


def sink_velocity(points_um: np.ndarray, tip_um: np.ndarray, axis: np.ndarray, inner_radius_um: float,
                  outer_radius_um: float, q_um3_s: float) -> np.ndarray:
    """Fluid velocity (um/s) at ``points_um`` (N, 3). ``axis`` is the unit vector from the tip into the pipette."""
    rel = np.atleast_2d(points_um) - tip_um[None, :]
    axial = rel @ axis
    radial = np.linalg.norm(rel - axial[:, None] * axis[None, :], axis=1)
    dist = np.linalg.norm(rel, axis=1)
    r = np.maximum(dist, inner_radius_um)
    v = np.zeros_like(rel)
    front = axial < 0
    v[front] = -(q_um3_s / (2 * np.pi * r[front, None] ** 2)) * rel[front] / np.maximum(dist[front, None], 1e-9)
    inside = (~front) & (radial < inner_radius_um)
    v[inside] = axis[None, :] * q_um3_s / (np.pi * inner_radius_um**2)
    return v


def lagged_flow(current_um3_s: float, target_um3_s: float, dt_s: float, tau_s: float) -> float:
    """One step of the line's first-order response toward the pump's commanded flow."""
    if tau_s <= 0:
        return target_um3_s
    return current_um3_s + (target_um3_s - current_um3_s) * (1.0 - np.exp(-dt_s / tau_s))
