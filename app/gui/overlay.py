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
    depth_text: str
    stale: bool


def build_overlay(est: Estimate | None, now_s: float, max_age_s: float, history: dict[int, list]) -> Overlay:
    if est is None:
        return Overlay(np.zeros((0, 2)), [], [], None, None, None, "", True)
    heads = np.array([d.centroid_px for d in est.detections], float).reshape(-1, 2)
    ids = [(t.id, t.position_px[0], t.position_px[1]) for t in est.tracks]
    for t in est.tracks:
        history.setdefault(t.id, []).append(t.position_px)
        del history[t.id][:-40]
    alive = {t.id for t in est.tracks}
    for k in [k for k in history if k not in alive]:
        del history[k]
    trails = [np.asarray(v) for v in history.values() if len(v) > 1]
    depth = ""
    if est.target_depth is not None:
        depth = f"z {est.target_depth.mean_um:+.2f} +- {est.target_depth.std_um:.2f} um"
    return Overlay(heads, ids, trails, est.target_px, est.target_predicted_px,
                   est.tip.position_px if est.tip else None, depth, est.age_s(now_s) > max_age_s)
