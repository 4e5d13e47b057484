"""Which sperm to aspirate: a selection policy with operator override, and where it will be."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.runtime.estimate import TrackState


@dataclass
class TargetPolicy:
    """Progressive motile (or immotile, for immotile campaigns), reachable, not about to cross another
    sperm, nearest to the pipette tip."""

    want: tuple[str, ...] = ("rapid_progressive", "slow_progressive")
    max_distance_px: float = 900.0
    margin_px: float = 60.0
    crossing_horizon_s: float = 0.5
    crossing_distance_px: float = 40.0
    min_quality: float = 0.5

    def select(self, tracks: list[TrackState], tip_px: np.ndarray | None, frame_shape: tuple[int, int],
               override_id: int | None = None) -> int | None:
        by_id = {t.id: t for t in tracks}
        if override_id is not None:
            return override_id if override_id in by_id else None
        h, w = frame_shape
        best, best_d = None, np.inf
        for t in tracks:
            if t.motility not in self.want or t.quality < self.min_quality:
                continue
            p = np.asarray(t.position_px)
            if not (self.margin_px <= p[0] <= w - self.margin_px and self.margin_px <= p[1] <= h - self.margin_px):
                continue
            d = float(np.linalg.norm(p - tip_px)) if tip_px is not None else 0.0
            if d > self.max_distance_px or self._about_to_cross(t, tracks):
                continue
            if d < best_d:
                best, best_d = t.id, d
        return best

    def _about_to_cross(self, t: TrackState, tracks: list[TrackState]) -> bool:
        p, v = np.asarray(t.position_px), np.asarray(t.velocity_px_s)
        for o in tracks:
            if o.id == t.id:
                continue
            dp, dv = np.asarray(o.position_px) - p, np.asarray(o.velocity_px_s) - v
            # closest approach within the horizon
            tau = np.clip(-(dp @ dv) / max(dv @ dv, 1e-9), 0.0, self.crossing_horizon_s)
            if np.linalg.norm(dp + dv * tau) < self.crossing_distance_px:
                return True
        return False


def nearest_track(tracks: list[TrackState], click_px: tuple[float, float], max_px: float = 40.0) -> int | None:
    """The track an operator clicked on (within ``max_px``)."""
    if not tracks:
        return None
    d = [np.hypot(t.position_px[0] - click_px[0], t.position_px[1] - click_px[1]) for t in tracks]
    i = int(np.argmin(d))
    return tracks[i].id if d[i] <= max_px else None
