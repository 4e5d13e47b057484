"""Record everything a run needs to be replayed: every frame as OME-TIFF, with per-frame stage, focus, tip
and timestamps, and what the perception and the controller made of it.

A recording is a folder::

    meta.json          rig, objective, pixel size, calibration in force, start time, frames dropped
    frames.ome.tif     the images (a new frames-NNN.ome.tif when the ROI changes); OME-XML planes carry the
                       stage X/Y (PositionX/Y), the focus (PositionZ), DeltaT and the exposure
    frames.jsonl       one line per frame: file, plane, frame id, capture time, stage, focus, tip (manipulator
                       axes and lab), ROI offset
    estimates.jsonl    one line per processed frame: target, its depth, the tip in the image, the tracks
    events.jsonl       the controller's transitions, with their reasons

Pages are written as they come (each with its own IFD, so a crash keeps every frame written so far, and
frames.jsonl describes them); the OME-XML is written when the recording closes. The replay camera
(``driver: replay``) reads the frames back. Writing happens on a thread of its own: the camera's thread
only queues; if the disk falls behind, frames are dropped and counted, never waited for.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from drivers.errors import MicromanipError
from drivers.frame import Frame

log = logging.getLogger(__name__)
_CLOSE = object()


class RecorderError(MicromanipError):
    """A recording folder cannot be created or written."""


@dataclass
class _Chunk:
    path: Path
    shape: tuple[int, int]
    dtype: np.dtype
    writer: Any
    planes: dict[str, list] = field(default_factory=lambda: {k: [] for k in (
        "DeltaT", "PositionX", "PositionY", "PositionZ", "ExposureTime")})


class Recorder:
    """Writes one recording folder; thread-safe (frames, estimates and transitions may come from different
    threads). ``close`` finishes the files; a closed recorder ignores what still arrives."""

    def __init__(self, folder: Path, meta: dict[str, Any], pixel_size_um: float, max_queue: int = 256) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if any(self.folder.glob("frames*.ome.tif")):
                raise RecorderError(f"{self.folder}: holds a recording already; choose another folder")
            self._files = {name: (self.folder / f"{name}.jsonl").open("a") for name in ("frames", "estimates", "events")}
        except OSError as exc:
            raise RecorderError(f"{self.folder}: cannot record here ({exc.strerror})") from None
        self.pixel_size_um = pixel_size_um
        self.meta = {**meta, "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                     "pixel_size_um": pixel_size_um}
        self.frames_written = 0
        self.frames_dropped = 0
        self._t0: float | None = None
        self._chunks: list[_Chunk] = []
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    # ----- producers ---------------------------------------------------------------------------------------
    def frame(self, frame: Frame, tip_manip_um: np.ndarray | None = None, tip_lab_um: np.ndarray | None = None) -> None:
        """Queue one frame with the tip's position when it was taken."""
        if self._closed.is_set():
            return
        record = {"frame_id": frame.frame_id, "t_s": frame.capture_time_s, "stage_xy_um": list(frame.stage_xy_um),
                  "focus_z_um": frame.focus_z_um, "exposure_ms": frame.exposure_ms,
                  "roi_offset_px": list(frame.roi_offset_px),
                  "tip_manip_um": None if tip_manip_um is None else [float(v) for v in tip_manip_um],
                  "tip_lab_um": None if tip_lab_um is None else [float(v) for v in tip_lab_um]}
        try:
            self._queue.put_nowait(("frame", frame.pixels, record))
        except queue.Full:
            self.frames_dropped += 1

    def estimate(self, est) -> None:
        """What the perception made of a frame (``perception.runtime.estimate.Estimate``)."""
        if self._closed.is_set() or est is None:
            return
        d = est.target_depth
        record = {
            "frame_id": est.frame_id, "t_s": est.capture_time_s, "finish_s": est.finish_time_s,
            "target_id": est.target_id, "target_px": est.target_px, "target_stage_um": est.target_stage_um,
            "target_depth_um": None if d is None else {"mean": d.mean_um, "std": d.std_um},
            "tip_px": None if est.tip is None else list(est.tip.position_px), "tip_stage_um": est.tip_stage_um,
            "bore_um": [s.axial_um for s in est.bore],
            "tracks": [{"id": t.id, "position_px": t.position_px, "position_um": t.position_um,
                        "motility": t.motility, "misses": t.misses} for t in est.tracks],
            "timings_ms": est.timings_ms}
        self._put(("estimates", None, record))

    def transition(self, tr) -> None:
        """A controller transition (``control.aspiration.Transition``)."""
        if self._closed.is_set():
            return
        self._put(("events", None, {"t_s": tr.t_s, "src": tr.src.value, "dst": tr.dst.value, "reason": tr.reason,
                                    "target_id": tr.target_id}))

    def _put(self, item) -> None:
        try:
            self._queue.put(item, timeout=1.0)
        except queue.Full:
            log.error("recorder: the writer fell behind; a %s line was lost", item[0])

    # ----- writer ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                return
            kind, pixels, record = item
            try:
                if kind == "frame":
                    self._write_frame(pixels, record)
                else:
                    self._files[kind].write(json.dumps(record, default=_plain) + "\n")
            except Exception as exc:  # the run goes on; the recording says it is incomplete
                if self._error is None:
                    log.error("recording to %s failed: %s", self.folder, exc)
                self._error = exc
                self.frames_dropped += kind == "frame"

    def _write_frame(self, pixels: np.ndarray, record: dict) -> None:
        import tifffile

        chunk = self._chunks[-1] if self._chunks else None
        if chunk is None or chunk.shape != pixels.shape or chunk.dtype != pixels.dtype:
            if chunk is not None:
                chunk.writer.close()
            name = "frames.ome.tif" if not self._chunks else f"frames-{len(self._chunks):03d}.ome.tif"
            chunk = _Chunk(self.folder / name, pixels.shape, pixels.dtype,
                           tifffile.TiffWriter(self.folder / name, bigtiff=True))
            self._chunks.append(chunk)
        if self._t0 is None:
            self._t0 = record["t_s"]
        plane = len(chunk.planes["DeltaT"])
        chunk.writer.write(pixels, contiguous=False, metadata=None,
                           description="micromanip recording (OME-XML follows when it closes)" if plane == 0 else None)
        p = chunk.planes
        p["DeltaT"].append(record["t_s"] - self._t0)
        p["PositionX"].append(record["stage_xy_um"][0])
        p["PositionY"].append(record["stage_xy_um"][1])
        p["PositionZ"].append(record["focus_z_um"])
        p["ExposureTime"].append(record["exposure_ms"])
        self._files["frames"].write(json.dumps({"file": chunk.path.name, "plane": plane, **record}) + "\n")
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the files (OME-XML, meta.json); returns the folder."""
        if self._closed.is_set():
            return self.folder
        self._closed.set()
        self._queue.put(_CLOSE)
        self._thread.join()
        for chunk in self._chunks:
            chunk.writer.close()
            self._write_ome(chunk)
        for fh in self._files.values():
            fh.close()
        meta = {**self.meta, "ended": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "frames": self.frames_written, "frames_dropped": self.frames_dropped,
                "files": [c.path.name for c in self._chunks],
                "error": None if self._error is None else str(self._error)}
        (self.folder / "meta.json").write_text(json.dumps(meta, indent=1, default=_plain))
        return self.folder

    def _write_ome(self, chunk: _Chunk) -> None:
        import tifffile

        n = len(chunk.planes["DeltaT"])
        h, w = chunk.shape
        units = {"DeltaTUnit": "s", "PositionXUnit": "µm", "PositionYUnit": "µm", "PositionZUnit": "µm",
                 "ExposureTimeUnit": "ms"}
        plane = {**chunk.planes, **{k: [v] * n for k, v in units.items()}}
        ome = tifffile.OmeXml(Creator="micromanip")
        ome.addimage(chunk.dtype, (n, h, w), (n, 1, 1, h, w, 1), axes="TYX", Name=self.meta.get("rig", "recording"),
                     PhysicalSizeX=self.pixel_size_um, PhysicalSizeY=self.pixel_size_um, PhysicalSizeXUnit="µm",
                     PhysicalSizeYUnit="µm", Plane=plane)
        # TIFF strings are 7-bit ASCII: the micro sign as an XML character reference
        tifffile.tiffcomment(chunk.path, ome.tostring().replace("µ", "&#181;"))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record a {type(value).__name__}")


def rig_meta(rig) -> dict[str, Any]:
    """What a replay needs to know about the rig that recorded."""
    cal = rig.calibration
    return {
        "rig": rig.config.name, "rig_file": str(rig.config.source) if rig.config.source else None,
        "objective": rig.config.objective.model_dump(), "objective_key": rig.objective_key,
        "calibration": {
            "sources": cal.sources,
            "camera": None if cal.camera_tf is None else {
                "pixel_size_um": cal.camera_tf.pixel_size_um, "rotation_deg": cal.camera_tf.rotation_deg,
                "flip_x": cal.camera_tf.flip_x},
            "manipulator": None if cal.manip_tf is None else {
                "matrix": cal.manip_tf.matrix.tolist(), "offset_um": cal.manip_tf.offset_um.tolist()},
            "floor_z_um": cal.floor_z_um},
    }
