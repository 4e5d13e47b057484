"""Where the controller's target depth comes from, so trials can compare them side by side.

``net`` (the classifier + Bayes filter) and ``none`` live in :mod:`control.aspiration`; here are the
``oracle`` (simulator ground truth, the upper bound) and ``dff`` (a depth-from-focus sweep at the target,
the classical baseline that needs the cell to hold still).
"""

from __future__ import annotations

import numpy as np

from control.aspiration import DepthReading
from perception.runtime.estimate import Estimate
from perception.runtime.focus import focus_sweep


def truth_for_target(est: Estimate, max_px: float = 20.0):
    """The simulated cell nearest to the target's image position (None off the simulator)."""
    truth = est.extra.get("truth")
    if truth is None or est.target_px is None:
        return None
    best = min(truth.sperm, key=lambda s: np.hypot(s.head_px[0] - est.target_px[0], s.head_px[1] - est.target_px[1]),
               default=None)
    if best is None or np.hypot(best.head_px[0] - est.target_px[0], best.head_px[1] - est.target_px[1]) > max_px:
        return None
    return best


class OracleDepth:
    """The true depth of the target's swimming path, the line the head swings about with the beat.

    The pipette has to meet the path: a rapid cell's head rolls and swings in z by 1.3-1.6 um from one
    frame to the next on average (up to ~5 um; the path: ~0.1 um), and a tip commanded to each
    instantaneous head depth keeps moving and never settles (the network's depth filter averages the
    swing out).

    It reads any depth, but is handled like the network's range (``range_limited``; the span of the
    network's classes where perception runs one, else +-2 um): a cell read at either end or beyond is
    refocused on, or passed over, before the tip goes for it. The oracle then
    differs from the network in accuracy alone, not in which cells are attempted; going for a cell far
    from focus (a development trial: 8.7 um) fails anyway, as the detector places its blurred head
    microns off its centre.
    """

    name = "oracle"
    range_limited = True

    def __init__(self) -> None:
        self.count, self.target = 0, None

    def __call__(self, est: Estimate) -> DepthReading | None:
        if est.target_id != self.target:
            self.count, self.target = 0, est.target_id
        cell = truth_for_target(est)
        if cell is None:
            return None
        self.count += 1
        span = est.target_depth.range_um if est.target_depth is not None else (-2.0, 2.0)
        return DepthReading(cell.path_depth_um, 0.05, self.count, span)


class DffDepth:
    """One focus sweep (+-3 um, 0.5 um steps) over a window at the target, when a target is first seen.

    The sweep holds the control loop for as long as the drive and the camera take (13 planes, one frame
    each, and a frame at the start before and after: about 0.65 s), with the stage still. A sweep without
    a clean peak inside it, or whose window changed meanwhile, gives no reading, and the controller passes
    the cell over: a cell that swims out of the window or rolls while the focus steps gives none, as at the
    microscope, where depth from focus could not be run on motile cells.
    """

    name = "dff"

    def __init__(self, focus, frames, window_px: int = 64) -> None:
        self.focus, self.frames, self.window_px = focus, frames, window_px
        self.target, self.reading = None, None

    def __call__(self, est: Estimate) -> DepthReading | None:
        if est.target_id is None or est.target_px is None:
            return None
        if est.target_id != self.target:
            self.target = est.target_id
            h, w = est.extra.get("frame_shape", (384, 640))
            n = self.window_px
            x = int(np.clip(est.target_px[0] - n / 2, 0, w - n))
            y = int(np.clip(est.target_px[1] - n / 2, 0, h - n))
            z_now = self.focus.z_um()
            res = focus_sweep(self.focus, self.frames, np.arange(-3.0, 3.01, 0.5), (x, y, n, n))
            self.reading = DepthReading(float(res.best_z_um - z_now), 0.4, 1_000_000) if res.reliable else None
        return self.reading
