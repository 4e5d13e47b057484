"""One frame -> one :class:`Estimate`: segmentation on an ROI around the pipette, head instances,
tracking, target selection, depth classification fused over time, the tip, and stage coordinates."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from calibration.transforms import CameraStageTransform
from drivers.errors import ConfigError
from drivers.frame import Frame, validate_pixels
from perception.classes import DEPTHS_UM
from perception.runtime.backend import load_backend, softmax
from perception.runtime.bore import heads_in_bore
from perception.runtime.depth_filter import DepthBayesFilter
from perception.runtime.detect import elongation_in_frame, heads_from_probs, tip_from_probs
from perception.runtime.estimate import Estimate, HeadDetection, TipEstimate
from perception.runtime.seg_input import NORMALISATION, network_input
from perception.runtime.target import TargetPolicy
from perception.runtime.tracking import Tracker, TrackerConfig
from perception.training.datasets import standardise


class PerceptionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seg_weights: str = "unext_seg"
    depth_weights: str = "depth_classifier"
    backend: Literal["auto", "torch", "onnx"] = "auto"
    inference_threads: int = Field(2, ge=1, le=64, description="onnxruntime threads per model. On 2 cores a second"
                                   " thread cuts segmentation 10.2 -> 8.9 ms for 4 ms more CPU: worth it for latency"
                                   " live; campaigns, which keep every core busy with trial processes, use 1")
    roi_px: tuple[int, int] = Field((768, 512), description="processed region (w, h) around the pipette tip")
    seg_scale: float | None = Field(None, gt=0.02, le=4.0, description="resize factor from frame to network pixels;"
                                    " default: the frame's pixel size over the model's nominal one (it is trained over"
                                    " a range, in its metadata: smaller is faster, larger places the tip more precisely)")
    crop_px: int = 96
    depth_source: Literal["net", "none"] = "net"
    latency_compensation_s: float = Field(0.03, ge=0)
    depth_diffusion_um2_s: float = Field(1.0, ge=0)
    depth_relock_per_s: float = Field(1.0, ge=0, description="chance per second that the depth is anywhere:"
                                      " lets the filter follow evidence after a confident wrong frame")
    want_motility: tuple[str, ...] = ("rapid_progressive", "slow_progressive")
    pipette_axis_deg: float | None = Field(0.0, description="opening -> pipette in image axes; None: any heading")
    pipette_inner_radius_um: float | None = Field(3.0, gt=0, description="the bore's radius, where a drawn-in head is"
                                                  " looked for (Estimate.bore); None: not looked for")
    min_head_area_um2: float = Field(
        1.0, ge=0, description="smallest head blob kept. At the pipette 1 um^2: the target's own blob shrinks"
        " when it turns edge-on, swings out of focus or passes behind the glass, and a target lost in front of the"
        " opening reads as drawn in (a 4 um^2 floor there: twin motile success 95% -> 80%, 3 false successes in"
        " 40); specks are kept out of the controller's targets by the tracker's own shape test. Recordings use"
        " RECORDING_MIN_HEAD_AREA_UM2")


TIP_ACROSS_ROI = 0.6  # the tip's place across the processed region, from its open side


def roi_around_tip(tip_px: tuple[float, float], frame_wh: tuple[int, int],
                   roi_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region (x, y, w, h) of a ``frame_wh`` image that perception works on: ``roi_wh`` (clipped to the
    image) with the tip ``TIP_ACROSS_ROI`` of the way across from the open side (the pipette lies along +x,
    ``pipette_axis_deg`` 0) and centred in height. Cells approach from the open side, and the 40% behind the
    opening shows a cell that swims past it instead of in: without that view, a cell leaving beside the glass
    vanishes as an entering one does."""
    w, h = frame_wh
    rw, rh = min(roi_wh[0], w), min(roi_wh[1], h)
    x0 = int(np.clip(tip_px[0] - rw * TIP_ACROSS_ROI, 0, w - rw))
    y0 = int(np.clip(tip_px[1] - rh / 2, 0, h - rh))
    return x0, y0, rw, rh


@dataclass
class Models:
    """Inference callables: ``seg(x) -> logits (N,C,h,w)`` and ``depth(x) -> logits (N,9)``.

    ``seg_pixel_um``: the segmentation's nominal input pixel size at the sample (from its metadata); frames
    of any pixel size are resampled to it. ``depths_um``: each depth class as the head's height above the
    focal plane (the weights' labels less their ``zero_offset_um``)."""

    seg: Callable[[np.ndarray], Any]
    depth: Callable[[np.ndarray], Any] | None
    depths_um: tuple[float, ...] = DEPTHS_UM
    seg_pixel_um: float = 0.5

    @classmethod
    def load(cls, cfg: PerceptionConfig) -> Models:
        seg, seg_meta = load_backend(cfg.seg_weights, cfg.backend, (1, 256, 256), threads=cfg.inference_threads)
        if seg_meta.get("normalisation") != NORMALISATION:
            raise ConfigError(f"segmentation weights {cfg.seg_weights}: trained with input normalisation "
                              f"{seg_meta.get('normalisation', 'per-frame standardisation')!r}, the runtime gives "
                              f"{NORMALISATION!r} (rebuild them: make weights)")
        depth = None
        depths: tuple[float, ...] = DEPTHS_UM
        if cfg.depth_source == "net":
            depth, meta = load_backend(cfg.depth_weights, cfg.backend, (1, cfg.crop_px, cfg.crop_px),
                                       threads=cfg.inference_threads)
            # the classes are the z-stacks' labels, offsets of the focal plane from the operator's zero; the
            # head's mid-plane lies zero_offset_um below that zero (sim/datasets.py), so class d is a head
            # d - zero_offset_um above the focal plane, the controller's meaning of depth
            depths = tuple(float(d) - float(meta.get("zero_offset_um", 0.0)) for d in meta["depths_um"])
        return cls(seg, depth, depths, float(seg_meta["input_pixel_um"]))


@dataclass
class PerceptionPipeline:
    models: Models
    cfg: PerceptionConfig = field(default_factory=PerceptionConfig)
    sensor_shape: tuple[int, int] = (1200, 1920)  # (h, w)
    rotation_deg: float = 0.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.tracker: Tracker | None = None
        self.policy = TargetPolicy(want=self.cfg.want_motility, axis_deg=self.cfg.pipette_axis_deg)
        self.depth_filter = DepthBayesFilter(self.models.depths_um, self.cfg.depth_diffusion_um2_s,
                                            relock_per_s=self.cfg.depth_relock_per_s)
        self.target_id: int | None = None
        self.override_id: int | None = None
        self.last_tip: TipEstimate | None = None
        self._focus_z_um: float | None = None

    # ----- operator -------------------------------------------------------------------------------------
    def select_target(self, track_id: int | None) -> None:
        """Operator override (None returns to the automatic policy)."""
        self.override_id = track_id

    def reject_target(self, track_id: int) -> None:
        """The automatic policy will not choose this track again (the controller gave up on it)."""
        self.policy.reject(track_id)

    # ----- processing -----------------------------------------------------------------------------------
    def _roi(self, frame: Frame) -> tuple[int, int, int, int]:
        h, w = frame.pixels.shape
        return roi_around_tip(self.last_tip.position_px if self.last_tip else (w / 2, h / 2), (w, h), self.cfg.roi_px)

    def seg_scale(self, pixel_size_um: float) -> float:
        """Resize factor from frame pixels to the segmentation's input: the configured one, else the frame's
        pixel size over the network's nominal one (a 0.4 um/px recording is shrunk to 0.5 um/px, the twin's
        0.1465 um/px frames too)."""
        return self.cfg.seg_scale or pixel_size_um / self.models.seg_pixel_um

    def _segment(self, frame: Frame, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, float]:
        """Class probabilities (C, h, w) of the ROI at the network's pixel size, and that size relative to the
        frame's. ``network_input`` flat-fields and pads to multiples of 32; the padding is cut off here."""
        x0, y0, rw, rh = roi
        region = frame.pixels[y0 : y0 + rh, x0 : x0 + rw]
        x, scale = network_input(region, frame.pixel_size_um, frame.pixel_size_um / self.seg_scale(frame.pixel_size_um))
        h, w = int(round(rh * scale)), int(round(rw * scale))
        logits = np.asarray(self.models.seg(x))[0, :, :h, :w]
        return softmax(np.ascontiguousarray(logits), axis=0), scale

    def _crop(self, frame: Frame, centre: tuple[float, float]) -> np.ndarray:
        n = self.cfg.crop_px
        h, w = frame.pixels.shape
        cx, cy = int(round(centre[0])), int(round(centre[1]))
        x0, y0 = cx - n // 2, cy - n // 2
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + n, w), min(y0 + n, h)
        top, bottom, left, right = ya - y0, y0 + n - yb, xa - x0, x0 + n - xb
        if max(top, bottom) < yb - ya and max(left, right) < xb - xa:
            # mirror only the crop's own region at the frame border (padding the whole frame cost ms)
            crop = cv2.copyMakeBorder(np.ascontiguousarray(frame.pixels[ya:yb, xa:xb]), top, bottom, left, right,
                                      cv2.BORDER_REFLECT_101)
        else:  # centre outside the frame
            pad = np.pad(frame.pixels, n, mode="reflect")
            crop = pad[y0 + n : y0 + 2 * n, x0 + n : x0 + 2 * n]
        if crop.dtype != np.uint8:  # Mono12 or float frames: to the 8-bit range the models saw
            crop = cv2.normalize(crop.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        return standardise(crop)

    def process(self, frame: Frame, dropped: int = 0) -> Estimate:
        validate_pixels(frame.pixels)
        t0 = self.clock()
        timings: dict[str, float] = {}
        if self.tracker is None:
            self.tracker = Tracker(TrackerConfig())
        tf = CameraStageTransform(frame.pixel_size_um, self.sensor_shape[1], self.sensor_shape[0], self.rotation_deg)
        roi = self._roi(frame)
        probs, scale = self._segment(frame, roi)
        t1 = self.clock()
        timings["segment_ms"] = (t1 - t0) * 1e3
        heads = heads_from_probs(probs, scale, (roi[0], roi[1]), um_per_px=frame.pixel_size_um,
                                 min_area_um2=self.cfg.min_head_area_um2)
        # the shape on the frame's own pixels, by which the tracker tells round particles out (detect.py says why)
        heads = [replace(d, frame_elongation=elongation_in_frame(frame.pixels, d.centroid_px, frame.pixel_size_um))
                 for d in heads]
        tip = tip_from_probs(probs, scale, (roi[0], roi[1]), um_per_px=frame.pixel_size_um) or self.last_tip
        self.last_tip = tip
        pts_px = np.array([d.centroid_px for d in heads], dtype=float).reshape(-1, 2)
        pts_um = tf.px_to_stage_um(pts_px, frame.stage_xy_um, frame.roi_offset_px) if len(pts_px) else pts_px
        shapes = np.array([(d.area_px * frame.pixel_size_um**2, np.nan if d.elongation is None else d.elongation,
                            np.nan if d.frame_elongation is None else d.frame_elongation)
                           for d in heads], dtype=float).reshape(-1, 3)
        tracks = [self._in_image(t, tf, frame) for t in self.tracker.update(pts_um, frame.capture_time_s, shapes)]
        t2 = self.clock()
        timings["track_ms"] = (t2 - t1) * 1e3
        tip_px = np.asarray(tip.position_px) if tip else None
        target = self.policy.select(tracks, tip_px, frame.pixels.shape, self.override_id, frame.capture_time_s)
        # depth is relative to the focal plane: a new target, or a focus move, restarts the filter
        refocused = self._focus_z_um is not None and abs(frame.focus_z_um - self._focus_z_um) > 0.05
        self._focus_z_um = frame.focus_z_um
        if target != self.target_id or refocused:
            self.depth_filter.reset()
            self.target_id = target
        target_state = next((t for t in tracks if t.id == target), None)
        depth = None
        target_px = predicted = None
        if target_state is not None:
            target_px = target_state.position_px
            lead = self.cfg.latency_compensation_s + (self.clock() - t0)
            predicted = (target_px[0] + target_state.velocity_px_s[0] * lead,
                         target_px[1] + target_state.velocity_px_s[1] * lead)
            probs_depth = None
            measured = target_state.misses == 0
            if measured and self.models.depth is not None:
                logits = np.asarray(self.models.depth(self._crop(frame, target_px)[None, None]))
                probs_depth = softmax(logits[0], axis=0)
            depth = self.depth_filter.step(frame.capture_time_s, probs_depth)
        t3 = self.clock()
        timings["depth_ms"] = (t3 - t2) * 1e3
        bore = ()
        if tip is not None and self.cfg.pipette_axis_deg is not None and self.cfg.pipette_inner_radius_um:
            bore = tuple(heads_in_bore(frame.pixels, tip.position_px, self.cfg.pipette_axis_deg, frame.pixel_size_um,
                                       self.cfg.pipette_inner_radius_um))
        timings["bore_ms"] = (self.clock() - t3) * 1e3
        to_stage = lambda p: tuple(float(v) for v in tf.px_to_stage_um(p, frame.stage_xy_um, frame.roi_offset_px)[0])  # noqa: E731
        finish = self.clock()
        timings["total_ms"] = (finish - t0) * 1e3
        return Estimate(
            frame_id=frame.frame_id, capture_time_s=frame.capture_time_s, finish_time_s=finish, timings_ms=timings,
            detections=heads, tracks=tracks, target_id=target if target_state else None, target_px=target_px,
            target_predicted_px=predicted, target_stage_um=to_stage(predicted) if predicted else None,
            target_depth=depth, tip=tip, tip_stage_um=to_stage(tip.position_px) if tip else None,
            dropped_frames=dropped, bore=bore, px_per_um=(tf.lab_um_to_px(np.eye(2)) - tf.lab_um_to_px(np.zeros(2))).T,
            extra={"roi": roi, "truth": frame.truth},
        )

    @staticmethod
    def _in_image(t, tf: CameraStageTransform, frame: Frame):
        from dataclasses import replace

        lab = np.asarray(t.position_um) - np.asarray(frame.stage_xy_um)
        px = tf.lab_um_to_px(lab, frame.roi_offset_px)[0]
        vel = tf.lab_um_to_px(np.asarray(t.velocity_um_s), (0, 0))[0] - tf.lab_um_to_px(np.zeros(2), (0, 0))[0]
        return replace(t, position_px=(float(px[0]), float(px[1])), velocity_px_s=(float(vel[0]), float(vel[1])))


__all__ = ["PerceptionPipeline", "PerceptionConfig", "Models", "HeadDetection", "roi_around_tip"]
