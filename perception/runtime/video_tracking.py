"""Head detection and tracking over a whole recording (``micromanip track``, ``micromanip eval heads``).

The same perception the rig runs (:class:`PerceptionPipeline`: segmentation at the network's own pixel
size, head instances, the tracker in um), on the whole frame rather than the controller's ROI, with the
recording's pixel size and frame rate. Each frame gives the head detections and the confirmed tracks
measured in that frame, as boxes in the recording's pixels: a head's box is the axis-aligned box of the
ellipse with the segmented blob's area, elongation and orientation; a track's box is that of the
detection it was updated with. Tracks that coast on a prediction (missed this frame) are not reported,
as MOTChallenge trackers report only what they saw. A recording is perceived offline, so a track is
reported from its first sighting: the frames it spent tentative (the tracker confirms a head after three
sightings) come out with the frame that first reports it, under their own frame numbers. On the real
development video that took tracked-head recall from 0.80 to 0.89 and MOTA from 0.54 to 0.60 (frames
116-151, tracking from frame 116; benchmarks/heads_real.py).

A repeated frame (a copy of the previous exposure, as frame-rate conversion leaves them) is not perceived
again: it gets the previous frame's result under its own number, and the tracker sees each exposure once,
at its own time. Fed the copies, the tracker counted one exposure three times towards confirming a track
(a blob in a single exposure became a track) and its velocity saw a cell stand still twice and then jump.
On the real development video (frames 116-151) this took identity switches from 53 to 42, predicted
tracks from 127 to 102 (80 labelled) and IDF1 from 0.70 to 0.72; MOTA stayed 0.60, set by the detector's
false positives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import cv2
import numpy as np

from drivers.frame import Frame
from drivers.recording import Recording
from perception.evaluation.labels import HeadBoxes
from perception.runtime.estimate import HeadDetection
from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline

#: the smallest head blob reported in a recording. A human head seen face-on covers 7-15 um^2 (WHO length
#: 3.7-4.7 um, width 2.5-3.2 um), edge-on about 4.5 um^2 (1.5 um wide once blurred at NA 0.65); smaller
#: blobs are specks, pieces of tails and compression texture. On the real development video (frames
#: 116-151) 4 um^2 instead of the controller's 1 took detection precision 0.66 -> 0.76 at recall
#: 0.91 -> 0.90, and MOTA 0.43 -> 0.54 (benchmarks/heads_real.py). The controller keeps smaller blobs
#: (PerceptionConfig.min_head_area_um2 says why). Not higher: 6 um^2, chosen on the video's training
#: frames 3-115, took its held-out F1 0.823 -> 0.833 and MOTA 0.60 -> 0.62, but the twin's 40x clip's head
#: recall below 0.6 (tests/app/test_recordings.py): a sharp head at 40x segments smaller than the
#: development video's blurred ones, and videos from other rigs may be either.
RECORDING_MIN_HEAD_AREA_UM2 = 4.0

#: a frame whose pixels differ from the previous frame's by less than this (mean absolute difference, grey
#: levels) is a repeat of it: videos converted to a higher frame rate hold copies of one exposure (the real
#: development video: runs of ~3 copies at 0.00-0.09, new exposures 0.99-4.2). A camera's own temporal noise
#: keeps two real exposures of even a still field apart by about 1 grey level.
REPEAT_MAX_MEAN_DIFF = 0.25


def recording_config(**fields) -> PerceptionConfig:
    """Perception of a recording: whole frames, no depth, no pipette in a known direction, heads of at
    least ``RECORDING_MIN_HEAD_AREA_UM2``; ``fields`` override."""
    base = {"depth_source": "none", "pipette_axis_deg": None, "min_head_area_um2": RECORDING_MIN_HEAD_AREA_UM2}
    return PerceptionConfig(**(base | fields))


def head_box_xywh(det: HeadDetection) -> tuple[float, float, float, float]:
    """The axis-aligned box (left, top, width, height) of the ellipse with the blob's area, elongation
    (long / short axis) and orientation, centred on its centroid."""
    e = det.elongation if det.elongation and np.isfinite(det.elongation) else 1.0
    b = np.sqrt(max(det.area_px, 1e-6) / (np.pi * e))  # semi-axes: area = pi a b, a = e b
    a = e * b
    t = np.radians(det.orientation_deg)
    hx = float(np.hypot(a * np.cos(t), b * np.sin(t)))
    hy = float(np.hypot(a * np.sin(t), b * np.cos(t)))
    cx, cy = det.centroid_px
    return cx - hx, cy - hy, 2 * hx, 2 * hy


@dataclass(frozen=True)
class FrameHeads:
    """One frame's result: detections (boxes, confidences) and the track rows it gives: those of the tracks
    measured in it, and of tracks first reported in it, their earlier sightings (``track_frames``)."""

    index: int
    det_xywh: np.ndarray  # (D, 4)
    det_conf: np.ndarray  # (D,)
    track_frames: np.ndarray  # (T,) the frame of each track row: this one, or earlier for a new track
    track_ids: np.ndarray  # (T,)
    track_xywh: np.ndarray  # (T, 4)
    track_conf: np.ndarray  # (T,)


class RecordingTracker:
    """Perception over consecutive frames of one recording (one tracker: frames must come in order)."""

    def __init__(self, models: Models, um_per_px: float, fps: float, frame_shape: tuple[int, int],
                 config: PerceptionConfig | None = None) -> None:
        h, w = frame_shape
        base = config or recording_config()
        self.cfg = base.model_copy(update={"roi_px": (w, h)})
        self.pipeline = PerceptionPipeline(models, self.cfg, sensor_shape=(h, w), clock=time.perf_counter)
        self.um_per_px = um_per_px
        self.period_s = 1.0 / fps
        self.last_timings_ms: dict[str, float] = {}  # the pipeline's stage times for the last frame
        self._reported: set[int] = set()  # live tracks reported at least once
        self._unreported: dict[int, list[tuple[int, np.ndarray, float]]] = {}  # sightings of the others
        self._last: tuple[np.ndarray, FrameHeads] | None = None  # the last perceived frame's pixels, result
        self._copies: dict[int, list[int]] = {}  # perceived frame -> the frames that repeat it

    def step(self, index: int, pixels: np.ndarray) -> FrameHeads:
        if self._last is not None and _is_repeat(pixels, self._last[0]):
            return self._repeat(index, self._last[1])
        res = self._perceive(index, pixels)
        self._last = (pixels, res)
        return res

    def _repeat(self, index: int, last: FrameHeads) -> FrameHeads:
        """``last``'s detections and its tracks measured in it, as frame ``index``."""
        self._copies.setdefault(last.index, []).append(index)
        own = last.track_frames == last.index
        return FrameHeads(index, last.det_xywh, last.det_conf, np.full(int(own.sum()), index, dtype=np.int64),
                          last.track_ids[own], last.track_xywh[own], last.track_conf[own])

    def _perceive(self, index: int, pixels: np.ndarray) -> FrameHeads:
        frame = Frame(pixels, index, index * self.period_s, self.um_per_px, (0.0, 0.0), 0.0, self.period_s * 1e3)
        est = self.pipeline.process(frame)
        self.last_timings_ms = est.timings_ms
        dets = est.detections
        det_xywh = np.array([head_box_xywh(d) for d in dets], dtype=float).reshape(-1, 4)
        det_conf = np.array([d.confidence for d in dets], dtype=float)
        rows: list[tuple[int, int, np.ndarray, float]] = []  # (frame, track id, box, confidence)
        for t in est.tracks:
            if t.id not in self._reported:  # first reported now: its sightings so far come out with it
                self._reported.add(t.id)
                rows += [(g, t.id, box, conf) for f, box, conf in self._unreported.pop(t.id, [])
                         for g in [f, *self._copies.get(f, [])]]
            if t.detection is not None:
                rows.append((index, t.id, det_xywh[t.detection], det_conf[t.detection]))
        tracks = self.pipeline.tracker.tracks
        for tr in tracks:
            if tr.id not in self._reported and tr.detection is not None:
                sighting = (index, det_xywh[tr.detection], det_conf[tr.detection])
                self._unreported.setdefault(tr.id, []).append(sighting)
        live = {tr.id for tr in tracks}
        self._reported &= live
        self._unreported = {k: v for k, v in self._unreported.items() if k in live}
        return FrameHeads(index, det_xywh, det_conf, np.array([r[0] for r in rows], dtype=np.int64),
                          np.array([r[1] for r in rows], dtype=np.int64),
                          np.array([r[2] for r in rows], dtype=float).reshape(-1, 4),
                          np.array([r[3] for r in rows], dtype=float))


def _is_repeat(pixels: np.ndarray, previous: np.ndarray) -> bool:
    if pixels.shape != previous.shape:
        return False
    return cv2.norm(pixels, previous, cv2.NORM_L1) / pixels.size < REPEAT_MAX_MEAN_DIFF  # one pass, no copies


def track_recording(recording: Recording, um_per_px: float, fps: float, models: Models | None = None,
                    start: int = 0, stop: int | None = None, config: PerceptionConfig | None = None,
                    on_frame: Callable[[FrameHeads], None] | None = None) -> tuple[HeadBoxes, HeadBoxes]:
    """Detections and tracks over frames ``start`` .. ``stop`` - 1 (0-based indices of the recording).

    ``on_frame`` sees each frame's result as it comes (a writer, a progress bar)."""
    models = models or Models.load(config or recording_config())
    tracker = RecordingTracker(models, um_per_px, fps, recording.shape, config)
    results: list[FrameHeads] = []
    for i, pixels in enumerate(recording.frames(start, stop), start=start):
        res = tracker.step(i, pixels)
        results.append(res)
        if on_frame is not None:
            on_frame(res)
    processed = [r.index for r in results]
    return _boxes(results, processed, tracks=False, source=str(recording.path)), \
        _boxes(results, processed, tracks=True, source=str(recording.path))


def _boxes(results: Iterable[FrameHeads], processed: list[int], tracks: bool, source: str) -> HeadBoxes:
    frame, xywh, ids, conf = [], [], [], []
    for r in results:
        b, c = (r.track_xywh, r.track_conf) if tracks else (r.det_xywh, r.det_conf)
        frame += r.track_frames.tolist() if tracks else [r.index] * len(b)
        xywh += b.tolist()
        conf += c.tolist()
        ids += r.track_ids.tolist() if tracks else []
    return HeadBoxes.from_rows(frame, xywh, ids if tracks else None, conf, frames=processed, source=source)
