"""Perception with segmentation replaced by the simulator's ground-truth masks.

Everything after segmentation (instances, tracking, target policy, depth, tip) is the real runtime, so
campaigns can separate XY errors from the rest. Only usable on the simulated rig (frames carry truth).
"""

from __future__ import annotations

import cv2
import numpy as np

from drivers.errors import FrameError
from drivers.frame import Frame
from perception.runtime.pipeline import PerceptionPipeline


class OracleSegPipeline(PerceptionPipeline):
    def _segment(self, frame: Frame, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, float]:
        masks = getattr(frame.truth, "masks", None)
        if masks is None:
            raise FrameError("oracle segmentation needs simulated frames rendered with masks")
        x0, y0, rw, rh = roi
        s = self.seg_scale(frame.pixel_size_um)
        size = (max(16, int(round(rw * s))), max(16, int(round(rh * s))))
        probs = np.zeros((4, size[1], size[0]), np.float32)
        for c, m in ((1, masks.head), (2, masks.flagellum), (3, masks.pipette)):
            probs[c] = cv2.resize(m[y0 : y0 + rh, x0 : x0 + rw].astype(np.float32), size, interpolation=cv2.INTER_AREA)
        probs[0] = np.clip(1.0 - probs[1:].sum(0), 0, 1)
        return probs, size[0] / rw
