"""What perception publishes. Every estimate says where it came from, how old it is and how sure it is."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class HeadDetection:
    centroid_px: tuple[float, float]  # ROI pixel (col, row)
    orientation_deg: float
    area_px: float
    confidence: float
    elongation: float | None = None  # long / short axis of the segmented head (None: not measured)
    frame_elongation: float | None = None  # the same of the dark matter around it on the frame (detect.py)


@dataclass(frozen=True)
class TrackState:
    """A confirmed track. The tracker works in stage um; the pipeline adds this frame's image position."""

    id: int
    position_um: tuple[float, float]  # stage (sample) frame
    velocity_um_s: tuple[float, float]
    age_frames: int
    misses: int
    quality: float
    motility: str | None  # WHO 2021 class once enough history exists
    vsl_um_s: float | None
    vcl_um_s: float | None
    position_px: tuple[float, float] = (0.0, 0.0)  # in this frame's image
    velocity_px_s: tuple[float, float] = (0.0, 0.0)  # image motion caused by the cell alone
    detection: int | None = None  # index of this frame's head detection that measured it (None: coasting)


@dataclass(frozen=True)
class DepthEstimate:
    mean_um: float
    std_um: float
    posterior: tuple[float, ...]
    measured: bool  # whether this frame contributed a measurement
    range_um: tuple[float, float] = (-2.0, 2.0)  # the depths the classes span: a reading at an end may lie beyond


@dataclass(frozen=True)
class TipEstimate:
    position_px: tuple[float, float]
    confidence: float


@dataclass(frozen=True)
class BoreSighting:
    """A head-sized disturbance inside the pipette's bore, seen through the glass (perception/runtime/bore.py):
    how far up the bore it lies (um from the opening, along the axis) and its contrast over the bore's
    noise; and where it lies in the frame (to draw it)."""

    axial_um: float
    contrast: float
    position_px: tuple[float, float] | None = None


@dataclass(frozen=True)
class Estimate:
    """One frame's perception result."""

    frame_id: int
    capture_time_s: float
    finish_time_s: float
    timings_ms: dict[str, float]
    detections: list[HeadDetection]
    tracks: list[TrackState]
    target_id: int | None
    target_px: tuple[float, float] | None
    target_predicted_px: tuple[float, float] | None  # at capture time + latency
    target_stage_um: tuple[float, float] | None
    target_depth: DepthEstimate | None
    tip: TipEstimate | None
    tip_stage_um: tuple[float, float] | None
    dropped_frames: int = 0
    bore: tuple[BoreSighting, ...] = ()  # heads seen inside the pipette's bore, strongest first
    px_per_um: np.ndarray | None = None  # (2, 2): image px per stage um at this frame, to draw sample-fixed history
    extra: dict = field(default_factory=dict)

    @property
    def latency_s(self) -> float:
        return self.finish_time_s - self.capture_time_s

    def age_s(self, now_s: float) -> float:
        return now_s - self.capture_time_s

    def track(self, track_id: int) -> TrackState | None:
        return next((t for t in self.tracks if t.id == track_id), None)
