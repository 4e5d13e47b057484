"""What to draw over the video, computed outside Qt from an estimate (the GUI only sets the data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.runtime.estimate import Estimate


@dataclass
class Overlay:
    heads_px: np.ndarray  # (N, 2)
    track_ids: list[tuple[int, float, float]]
    trails: list[np.ndarray]
    target_px: tuple[float, float] | None
    intercept_px: tuple[float, float] | None
    tip_px: tuple[float, float] | None
    bore_px: np.ndarray  # (M, 2): heads seen inside the pipette, through the glass
    depth_text: str
    stale: bool


class Trails:
    """The last ``length`` positions of each live track, one per estimate, kept in stage um and drawn over
    the current frame: a trail stays on the cells' path while the stage moves under them. The video runs at
    the camera's rate and shows the same estimate over several images, which must not repeat points."""

    def __init__(self, length: int = 15) -> None:
        self.length = length
        self._points_um: dict[int, list[tuple[float, float]]] = {}
        self._frame_id: int | None = None

    def update(self, est: Estimate) -> list[np.ndarray]:
        if est.frame_id != self._frame_id:
            self._frame_id = est.frame_id
            for t in est.tracks:
                self._points_um.setdefault(t.id, []).append(t.position_um)
                del self._points_um[t.id][:-self.length]
            alive = {t.id for t in est.tracks}
            for k in [k for k in self._points_um if k not in alive]:
                del self._points_um[k]
        if est.px_per_um is None:
            return []
        trails = []
        for t in est.tracks:
            points_um = self._points_um.get(t.id, [])
            if len(points_um) > 1:
                shift_um = np.asarray(points_um) - np.asarray(t.position_um)
                trails.append(np.asarray(t.position_px) + shift_um @ est.px_per_um.T)
        return trails


def build_overlay(est: Estimate | None, now_s: float, max_age_s: float, trails: Trails) -> Overlay:
    if est is None:
        return Overlay(np.zeros((0, 2)), [], [], None, None, None, np.zeros((0, 2)), "", True)
    heads = np.array([d.centroid_px for d in est.detections], float).reshape(-1, 2)
    ids = [(t.id, t.position_px[0], t.position_px[1]) for t in est.tracks]
    depth = ""
    if est.target_depth is not None:
        depth = f"z {est.target_depth.mean_um:+.2f} +- {est.target_depth.std_um:.2f} um"
    bore = np.array([s.position_px for s in est.bore if s.position_px is not None], float).reshape(-1, 2)
    return Overlay(heads, ids, trails.update(est), est.target_px, est.target_predicted_px,
                   est.tip.position_px if est.tip else None, bore, depth, est.age_s(now_s) > max_age_s)
