"""The operator window's calibration wizard: floor, camera and manipulator, each on a stop-aware worker
thread, so the window stays live and STOP halts the stage or the manipulator mid-pattern.

Images come from the live stream (a streaming camera cannot snap): :class:`StreamFrames` hands the routine
the first image taken after it asks, so nothing moving when the request was made is in it.
"""

from __future__ import annotations

import threading

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from app.calibrate import INSTRUCTIONS, Part, run_calibration
from drivers.errors import DeviceError, MicromanipError
from drivers.frame import Frame
from drivers.stop import Stopped, StopToken, Task


class StreamFrames:
    """``snap()`` over the live session's stream: the next image captured after the call."""

    def __init__(self, session, timeout_s: float = 5.0) -> None:
        self.session = session
        self.pixel_size_um = session.rig.frames.pixel_size_um
        self.timeout_s = timeout_s
        self._newest: Frame | None = None
        self._arrived = threading.Condition()
        session.frame_ready.connect(self._on_frame)

    def _on_frame(self, frame: Frame, est) -> None:
        with self._arrived:
            self._newest = frame
            self._arrived.notify_all()

    def snap(self) -> Frame:
        after = self.session.rig.clock.now()
        with self._arrived:
            ok = self._arrived.wait_for(lambda: self._newest is not None and self._newest.capture_time_s > after,
                                        self.timeout_s)
            if not ok:
                raise DeviceError(self.session.rig.camera.name, "snap", f"no new image from the stream within "
                                  f"{self.timeout_s:g} s")
            return self._newest  # type: ignore[return-value]

    def close(self) -> None:
        self.session.frame_ready.disconnect(self._on_frame)


class CalibrationPanel(QGroupBox):
    """Buttons for the three calibrations, what to do before each, the fit's report and verdict."""

    finished = Signal(str, bool, str)  # part, accepted, report or reason (emitted from the worker thread)

    def __init__(self, session, log_line) -> None:
        super().__init__("Calibration")
        self.session = session
        self._log_line = log_line
        self.task: Task | None = None
        self._running = False
        layout = QVBoxLayout(self)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for part, text in (("floor", "1. Floor"), ("camera", "2. Camera"), ("manipulator", "3. Manipulator")):
            b = QPushButton(text)
            b.setToolTip(INSTRUCTIONS[part])  # type: ignore[index]
            b.clicked.connect(lambda _=False, p=part: self.start(p))  # type: ignore[misc]
            row.addWidget(b)
            self.buttons[part] = b
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        layout.addWidget(self.result)
        self.finished.connect(self._on_finished)
        self.show_status()

    @property
    def busy(self) -> bool:
        """A calibration is running (until its verdict has reached the window)."""
        return self._running

    def show_status(self) -> None:
        cal = self.session.rig.calibration
        self.status.setText(f"{self.session.rig.objective_key}: {cal.summary()}")

    def start(self, part: Part) -> None:
        if self.busy:
            return
        ctl = self.session.controller
        if ctl is not None and not ctl.done:
            self.result.setText("a trial is running: abort it before calibrating")
            return
        self.result.setText(f"calibrating {part}... {INSTRUCTIONS[part]}")
        for b in self.buttons.values():
            b.setEnabled(False)
        self.cancel_button.setEnabled(True)
        frames = StreamFrames(self.session)
        self._running = True

        def work(token: StopToken) -> None:  # the worker thread: the verdict goes to the Qt thread by signal
            try:
                outcome = run_calibration(part, self.session.rig, frames, token)
                self.finished.emit(part, True, f"{outcome.report}; saved to {outcome.store}")
            except Stopped as exc:
                self.finished.emit(part, False, f"stopped: {exc}")
            except MicromanipError as exc:
                self.finished.emit(part, False, str(exc))
            except Exception as exc:  # the window stays up; the Task logs the traceback
                self.finished.emit(part, False, f"failed: {exc}")
                raise
            finally:
                frames.close()

        self.task = Task(f"calibrate-{part}", work, StopToken(self.session.rig.clock)).start()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.stop("cancelled by the operator")

    def _on_finished(self, part: str, accepted: bool, text: str) -> None:  # the Qt thread
        self._running = False
        verdict = "ACCEPTED" if accepted else "REFUSED"
        self.result.setText(f"{part} {verdict}: {text}")
        self._log_line(f"calibration {part} {verdict}: {text}")
        for b in self.buttons.values():
            b.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.show_status()
