"""The perception thread: newest frame only, one inference in flight, estimates published as signals.

Frames arrive from the camera's grab thread (``submit``). A one-slot mailbox keeps only the newest
frame; any frame replaced before it was processed is counted as dropped. A corrupt frame (wrong dtype,
shape, NaN) is rejected with a logged error and the worker carries on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from psygnal import Signal

from drivers.errors import FrameError
from perception.runtime.pipeline import PerceptionPipeline

log = logging.getLogger(__name__)


class PerceptionWorker:
    estimate_ready = Signal(object)  # Estimate
    frame_rejected = Signal(int, str)  # frame id, reason

    def __init__(self, pipeline: PerceptionPipeline) -> None:
        self.pipeline = pipeline
        self._slot: Any = None
        self._cond = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None
        self.dropped_frames = 0
        self.rejected_frames = 0
        self.processed_frames = 0
        self.latest = None

    def start(self) -> PerceptionWorker:
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="perception", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def submit(self, frame: Any) -> None:
        """Hand over a frame; an unprocessed older frame is dropped (and counted)."""
        with self._cond:
            if self._slot is not None:
                self.dropped_frames += 1
            self._slot = frame
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and self._slot is None:
                    self._cond.wait(0.1)
                if not self._running:
                    return
                frame, self._slot = self._slot, None
                dropped = self.dropped_frames
            try:
                estimate = self.pipeline.process(frame, dropped)
            except FrameError as exc:
                self.rejected_frames += 1
                fid = getattr(frame, "frame_id", -1)
                log.error("perception: frame %s rejected: %s", fid, exc)
                self.frame_rejected.emit(fid, str(exc))
                continue
            except Exception:  # a bug in one frame must not kill the loop the controller depends on
                self.rejected_frames += 1
                log.exception("perception: frame %s failed", getattr(frame, "frame_id", -1))
                continue
            self.processed_frames += 1
            self.latest = estimate
            self.estimate_ready.emit(estimate)
