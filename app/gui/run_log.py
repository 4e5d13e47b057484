"""What the operator window keeps of its runs: every trial in the SQLite trial log campaigns use (one
campaign row per window session), and, while recording, every frame, estimate and transition
(:class:`app.recording.Recorder`). It observes the live session's signals and commands nothing."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

from app.recording import Recorder, rig_meta
from app.trial_log import TrialLog, now_iso

log = logging.getLogger(__name__)


class RunLog:
    def __init__(self, session, db: Path) -> None:
        self.session = session
        self.db = Path(db)
        self.recorder: Recorder | None = None
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._trial_start: str | None = None
        self._trial_t0: float | None = None
        self._last_estimate_id: int | None = None
        rig = session.rig
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with TrialLog(self.db) as trial_log:
            self.campaign_id = trial_log.campaign(
                f"gui:{rig.config.name}:{started}", str(rig.config.source), 0, session.seed,
                rig.config.control.motility, session.depth_source.name,
                json.loads(rig.config.model_dump_json()), rig_meta(rig)["calibration"],
                session.params.model_dump())
        session.frame_ready.connect(self._on_frame)
        session.state_changed.connect(self._on_transition)
        session.trial_finished.connect(self._on_trial)

    # ----- recording --------------------------------------------------------------------------------------
    def start_recording(self, folder: Path) -> Recorder:
        with self._lock:
            if self.recorder is not None:
                return self.recorder
            rig = self.session.rig
            self.recorder = Recorder(folder, rig_meta(rig), rig.frames.pixel_size_um)
            self._last_estimate_id = None
            log.info("recording to %s", folder)
            return self.recorder

    def stop_recording(self) -> Path | None:
        with self._lock:
            recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        folder = recorder.close()
        log.info("recording stopped: %d frames in %s (%d dropped)", recorder.frames_written, folder,
                 recorder.frames_dropped)
        return folder

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def _on_frame(self, frame, est) -> None:  # the camera's thread
        recorder = self.recorder
        if recorder is None:
            return
        tip_manip = tip_lab = None
        try:
            tip_manip = self.session.rig.manipulator.position_um()
            tf = self.session.rig.calibration.manip_tf
            tip_lab = tf.to_lab(tip_manip) if tf is not None else None
        except Exception as exc:  # a device read failing must not stop the recording of images
            log.debug("recording without the tip position: %s", exc)
        recorder.frame(frame, tip_manip, tip_lab)
        if est is not None and est.frame_id != self._last_estimate_id:
            self._last_estimate_id = est.frame_id
            recorder.estimate(est)

    # ----- trials ----------------------------------------------------------------------------------------
    def _on_transition(self, tr) -> None:  # the session's thread
        recorder = self.recorder
        if recorder is not None:
            recorder.transition(tr)
        if tr.src.value == "Idle":
            self._events, self._trial_start, self._trial_t0 = [], now_iso(), tr.t_s
        t0 = self._trial_t0 if self._trial_t0 is not None else tr.t_s
        self._events.append({"t_s": tr.t_s - t0, "src": tr.src.value, "dst": tr.dst.value, "reason": tr.reason,
                             "target_id": tr.target_id})

    def _on_trial(self, rec) -> None:  # the session's thread: one short transaction per trial
        result = {"index": rec.index, "start": self._trial_start or now_iso(), "end": now_iso(),
                  "rig": str(self.session.rig.config.source), "seed": self.session.seed, "outcome": rec.outcome,
                  "failure_mode": rec.failure_mode, "target_id": rec.target_id, "depth_error_um": None,
                  "duration_s": rec.duration_s, "events": self._events}
        try:
            with TrialLog(self.db) as trial_log:
                trial_log.record(self.campaign_id, result)
        except Exception as exc:  # the window goes on; the operator sees the error in the log view
            log.error("trial %d not written to %s: %s", rec.index, self.db, exc)

    def close(self) -> None:
        self.stop_recording()
        self.session.frame_ready.disconnect(self._on_frame)
        self.session.state_changed.disconnect(self._on_transition)
        self.session.trial_finished.disconnect(self._on_trial)
