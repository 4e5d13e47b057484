"""Which sperm to aspirate: a selection policy with operator override, and where it will be."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.runtime.estimate import TrackState


@dataclass
class TargetPolicy:
    """Progressive motile (or immotile, for immotile campaigns), reachable, swimming into the pipette
    opening, not about to cross another sperm, nearest to the pipette tip.

    The pipette cannot turn, so a motile cell is only a candidate when it swims roughly along the
    pipette axis (``axis_deg``, from the opening into the pipette, in image axes): it then swims into
    the opening by itself, as the paper recommends timing the aspiration. Once chosen, a target is kept
    while its track lives and stays in the image, so the controller is not switched mid-approach.
    A new target is never chosen right next to the tip (``min_distance_px``): there the glass hides
    the head and the stage could not set the working distance anyway. Blobs that do not look like heads
    (debris, which does not swim either) are already left out by the tracker. A field where every cell
    swims away or across can leave the policy waiting through several search moves: after ``patience_s``
    without a target, cells swimming across the axis (``patient_heading_deg``) are taken too, and the stage
    brings them to the opening.
    """

    want: tuple[str, ...] = ("rapid_progressive", "slow_progressive")
    max_distance_px: float = 900.0
    min_distance_px: float = 150.0  # closer cells lie in the glass's shadow, where heads are lost
    margin_px: float = 60.0  # a new target is chosen this far inside the image; the current one is kept
    # to the image's edge: a cell swimming past the opening near the edge is still seen beside the glass
    # (dropping it there made its vanishing look like an entry: a false success)
    crossing_horizon_s: float = 0.5
    crossing_distance_px: float = 40.0
    min_quality: float = 0.5
    axis_deg: float | None = 0.0
    max_heading_deg: float = 50.0
    moving_px_s: float = 20.0  # slower cells have no heading to check
    # a head seen through the glass, behind the opening and within the pipette's outline (8.8 um either
    # side of its axis at the reference rig's 0.1465 um/px: the outer radius 60 um up the taper), is a cell
    # already drawn in, never a new target
    glass_half_width_px: float = 60.0
    patience_s: float = 4.0
    patient_heading_deg: float = 90.0
    current: int | None = None
    excluded: set[int] = field(default_factory=set)
    _waiting_since_s: float | None = field(default=None, init=False, repr=False)

    def select(self, tracks: list[TrackState], tip_px: np.ndarray | None, frame_shape: tuple[int, int],
               override_id: int | None = None, now_s: float | None = None) -> int | None:
        """The target's track id, or None; ``now_s`` (the frame's time) lets a long wait widen the
        heading gate."""
        by_id = {t.id: t for t in tracks}
        if override_id is not None:
            return override_id if override_id in by_id else None
        h, w = frame_shape
        kept = by_id.get(self.current) if self.current is not None else None
        if kept is not None and self._in_view(kept, w, h, margin_px=0.0):
            return self.current
        waited = self._waiting_since_s is not None and now_s is not None and now_s - self._waiting_since_s >= self.patience_s
        max_heading_deg = self.patient_heading_deg if waited else self.max_heading_deg
        best, best_d = None, np.inf
        for t in tracks:
            if t.id in self.excluded:
                continue
            if t.motility not in self.want or t.quality < self.min_quality or t.misses > 0:
                continue
            if not self._in_view(t, w, h, self.margin_px) or not self._heading_ok(t, max_heading_deg):
                continue
            if tip_px is not None and self._in_glass(t, tip_px):
                continue
            d = float(np.linalg.norm(np.asarray(t.position_px) - tip_px)) if tip_px is not None else self.min_distance_px
            if not self.min_distance_px <= d <= self.max_distance_px or self._about_to_cross(t, tracks):
                continue
            if d < best_d:
                best, best_d = t.id, d
        self.current = best
        if best is not None:
            self._waiting_since_s = None
        elif self._waiting_since_s is None:
            self._waiting_since_s = now_s
        return best

    def reject(self, track_id: int) -> None:
        """Never choose this track again (an attempt on it failed); choose anew."""
        self.excluded.add(track_id)
        if self.current == track_id:
            self.current = None

    @staticmethod
    def _in_view(t: TrackState, w: int, h: int, margin_px: float) -> bool:
        p = t.position_px
        return margin_px <= p[0] <= w - margin_px and margin_px <= p[1] <= h - margin_px

    def _in_glass(self, t: TrackState, tip_px: np.ndarray) -> bool:
        if self.axis_deg is None:
            return False
        ax = np.deg2rad(self.axis_deg)
        rel = np.asarray(t.position_px, dtype=float) - np.asarray(tip_px, dtype=float)
        along = float(rel @ np.array([np.cos(ax), np.sin(ax)]))
        across = float(rel @ np.array([-np.sin(ax), np.cos(ax)]))
        return along > 0.0 and abs(across) < self.glass_half_width_px

    def _heading_ok(self, t: TrackState, max_heading_deg: float) -> bool:
        v = np.asarray(t.velocity_px_s)
        speed = float(np.linalg.norm(v))
        if self.axis_deg is None or speed < self.moving_px_s:
            return True
        ax = np.deg2rad(self.axis_deg)
        cos = float(v @ np.array([np.cos(ax), np.sin(ax)])) / speed
        return cos >= np.cos(np.deg2rad(max_heading_deg)) - 1e-9

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
