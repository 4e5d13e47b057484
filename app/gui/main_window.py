"""The operator window: live video with overlays, device panel, state machine, plots, trials, log."""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import (QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                             QMainWindow, QPlainTextEdit, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem,
                             QTabWidget, QVBoxLayout, QWidget, QScrollArea, QSplitter)

from app.gui.calibration_panel import CalibrationPanel
from app.gui.overlay import Trails, build_overlay
from app.gui.run_log import RunLog
from app.gui.session import LiveSession, TrialRecord, stop_on_signals
from drivers.errors import MicromanipError
from drivers.frame import full_scale
from drivers.stop import ESTOP

log = logging.getLogger(__name__)
PLOT_PERIOD_S = 0.25  # plots redraw at 4 Hz whatever the frame rate


class Bridge(QObject):
    """Carries session events into the Qt main thread. Images are throttled at the producer: one is sent
    only when the GUI has drawn the previous one, and at most ``max_fps`` a second (a camera may deliver
    hundreds; drawing them would take the CPU from the control loop for nothing an operator can see)."""

    frame = Signal(object, object)
    trial = Signal(object)
    state = Signal(object)
    log_line = Signal(str)

    def __init__(self, max_fps: float = 40.0, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self.clock = clock
        self.pending = False
        self.min_interval_s = 1.0 / max_fps
        self._due_s = -float("inf")

    def offer_frame(self, frame, est) -> None:  # called in the session thread
        # The rate is capped on average, not per interval: an image arriving early after a late one is
        # still sent (a minimum interval dropped 10-15% of a 32/s camera's images to arrival jitter).
        now = self.clock()
        if not self.pending and now >= self._due_s:
            self.pending = True
            self._due_s = max(self._due_s, now - self.min_interval_s) + self.min_interval_s
            self.frame.emit(frame, est)


class QtLogHandler(logging.Handler):
    def __init__(self, bridge: Bridge) -> None:
        super().__init__(logging.INFO)
        self.bridge = bridge
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.bridge.log_line.emit(self.format(record))


class MainWindow(QMainWindow):
    """``db``: the SQLite trial log the window's trials go to (None: not logged); ``record_dir``: where the
    Record button writes (a new timestamped folder per recording)."""

    def __init__(self, session: LiveSession, db: Path | None = None, record_dir: Path | None = None) -> None:
        super().__init__()
        self.session = session
        self.record_dir = record_dir
        self.run_log = RunLog(session, db) if db is not None else None
        self.setWindowTitle(f"micromanip — {session.rig.config.name}")
        self.resize(1500, 950)
        self.bridge = Bridge()
        self.frames_shown = 0
        self._trails = Trails()
        self._t0 = session.rig.clock.now()
        self._plotted_at = -np.inf
        self._volume_nl, self._volume_read_at = np.nan, -np.inf
        self._series = {k: deque(maxlen=600) for k in ("t", "depth", "std", "truth", "err", "flow", "vol", "fps", "lat")}
        self._build()
        self.log_handler = QtLogHandler(self.bridge)
        logging.getLogger().addHandler(self.log_handler)
        self.bridge.frame.connect(self._on_frame)
        self.bridge.trial.connect(self._on_trial)
        self.bridge.state.connect(self._on_state)
        self.bridge.log_line.connect(self.log_view.appendPlainText)
        session.frame_ready.connect(self.bridge.offer_frame)
        self._forward_trial = lambda rec: self.bridge.trial.emit(rec)
        self._forward_state = lambda tr: self.bridge.state.emit(tr)
        session.trial_finished.connect(self._forward_trial)
        session.state_changed.connect(self._forward_state)
        self._devices_timer = QTimer(self)
        self._devices_timer.timeout.connect(self._refresh_devices)
        self._devices_timer.start(200)
        ESTOP.triggered_changed.connect(lambda on, why: self.bridge.log_line.emit(
            f"EMERGENCY STOP {'ACTIVE: ' + why if on else 'reset'}"))

    # ----- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
        self.video = pg.GraphicsLayoutWidget()
        self.view = self.video.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.heads = pg.ScatterPlotItem(size=18, pen=pg.mkPen("c", width=1.5), brush=None, symbol="o")
        self.trails = pg.PlotDataItem(pen=pg.mkPen((0, 200, 255, 120), width=1), connect="finite")
        self.target = pg.ScatterPlotItem(size=28, pen=pg.mkPen("r", width=2.5), brush=None, symbol="+")
        self.intercept = pg.ScatterPlotItem(size=12, pen=pg.mkPen("y", width=2), brush=None, symbol="x")
        self.tip = pg.ScatterPlotItem(size=16, pen=pg.mkPen("g", width=2.5), brush=None, symbol="t1")
        self.bore = pg.ScatterPlotItem(size=14, pen=pg.mkPen((255, 150, 0), width=2), brush=None, symbol="s")
        self.depth_text = pg.TextItem("", color="y", anchor=(0, 1))
        self.stale_text = pg.TextItem("", color="r", anchor=(0, 0))
        for item in (self.trails, self.heads, self.target, self.intercept, self.tip, self.bore, self.depth_text,
                     self.stale_text):
            self.view.addItem(item)
        self.id_texts: list[pg.TextItem] = []
        self.video.scene().sigMouseClicked.connect(self._on_click)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        status = QGroupBox("Status")
        sl = QFormLayout(status)
        self.state_label = QLabel("Idle")
        self.state_label.setStyleSheet("font-size: 18px; font-weight: bold;")
        self.fps_label = QLabel("-")
        self.latency_label = QLabel("-")
        sl.addRow("state", self.state_label)
        sl.addRow("perception", self.fps_label)
        sl.addRow("latency", self.latency_label)
        side_layout.addWidget(status)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.abort_button = QPushButton("Abort")
        for b in (self.start_button, self.pause_button, self.abort_button):
            buttons.addWidget(b)
        side_layout.addLayout(buttons)
        self.stop_button = QPushButton("STOP")
        self.stop_button.setMinimumHeight(70)
        self.stop_button.setStyleSheet("background: #d00000; color: white; font-size: 28px; font-weight: bold;")
        side_layout.addWidget(self.stop_button)
        self.reset_button = QPushButton("Reset emergency stop")
        side_layout.addWidget(self.reset_button)
        side_layout.addWidget(self._device_panel())
        self.calibration = CalibrationPanel(self.session, self.bridge.log_line.emit)
        side_layout.addWidget(self.calibration)
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.setEnabled(self.run_log is not None)
        self.record_button.setToolTip("frames (OME-TIFF), estimates and transitions to a new folder")
        self.record_button.toggled.connect(self._record)
        side_layout.addWidget(self.record_button)
        side_layout.addWidget(self._params_panel())
        side_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(440)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._plots(), "Plots")
        self.tabs.addTab(self._trials_panel(), "Trials")
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.tabs.addTab(self.log_view, "Log")

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.video)
        left.addWidget(self.tabs)
        left.setSizes([620, 300])
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(scroll)
        main.setSizes([1120, 380])
        self.setCentralWidget(main)
        self.start_button.clicked.connect(self.start_trial)
        self.pause_button.toggled.connect(self._pause)
        self.abort_button.clicked.connect(self.session.abort)
        self.stop_button.clicked.connect(self.emergency_stop)
        self.reset_button.clicked.connect(ESTOP.reset)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.emergency_stop)
        if self.session.perception_only:
            self.start_button.setEnabled(False)
            self.start_button.setToolTip("this rig runs perception only: a recording cannot follow a move")
            cam = self.session.rig.config.camera
            source = f"recording {Path(str(getattr(cam, 'path', ''))).name}" if cam.driver == "replay" else "camera"
            self.statusBar().showMessage(f"live: {source} (perception only)")
        else:
            self.statusBar().showMessage("live: sim rig" if self.session.rig.world is not None else "live: hardware")

    def _device_panel(self) -> QGroupBox:
        box = QGroupBox("Devices (jogs pass the same safety checks as the controller)")
        form = QFormLayout(box)
        self.dev_labels = {k: QLabel("-") for k in ("stage", "manipulator", "focus", "pump")}
        rig = self.session.rig

        def jog(fn, *args):
            def run():
                try:
                    fn(*args)
                except Exception as exc:  # limits and e-stop refusals are shown, not raised
                    self.bridge.log_line.emit(f"jog refused: {exc}")
            return run

        self.jog_buttons: dict[tuple[str, str], QPushButton] = {}

        def row(label: str, pairs: list[tuple[str, object]]) -> None:
            w = QWidget()
            h = QHBoxLayout(w)
            h.setContentsMargins(0, 0, 0, 0)
            h.addWidget(self.dev_labels[label], 1)
            for text, cb in pairs:
                b = QPushButton(text)
                b.setMaximumWidth(44)
                b.clicked.connect(cb)
                h.addWidget(b)
                self.jog_buttons[(label, text)] = b
            form.addRow(label, w)

        row("stage", [("-x", jog(rig.stage.move_by_um, -20, 0)), ("+x", jog(rig.stage.move_by_um, 20, 0)),
                      ("-y", jog(rig.stage.move_by_um, 0, -20)), ("+y", jog(rig.stage.move_by_um, 0, 20))])
        row("manipulator", [("-x", jog(rig.manipulator.move_by_um, [-5, 0, 0])),
                            ("+x", jog(rig.manipulator.move_by_um, [5, 0, 0])),
                            ("-z", jog(rig.manipulator.move_by_um, [0, 0, -1])),
                            ("+z", jog(rig.manipulator.move_by_um, [0, 0, 1]))])
        row("focus", [("-z", jog(rig.focus.move_by_um, -0.5)), ("+z", jog(rig.focus.move_by_um, 0.5))])
        row("pump", [("on", jog(rig.pump.aspirate, 1.2)), ("off", jog(rig.pump.stop))])
        return box

    def _params_panel(self) -> QGroupBox:
        box = QGroupBox("State machine parameters")
        form = QFormLayout(box)
        for section, model in self.session.params:
            for name, info in type(model).model_fields.items():
                value = getattr(model, name)
                if isinstance(value, bool):
                    continue
                if isinstance(value, int):
                    w = QSpinBox()
                    w.setRange(0, 10_000)
                    w.setValue(value)
                else:
                    w = QDoubleSpinBox()
                    w.setDecimals(2)
                    w.setRange(-1e6, 1e6)
                    w.setValue(float(value))
                w.setToolTip(info.description or name)

                def setter(v, model=model, name=name):
                    try:
                        setattr(model, name, v)
                    except ValueError as exc:
                        self.bridge.log_line.emit(f"parameter {name} refused: {exc.errors()[0]['msg']}")

                w.valueChanged.connect(setter)
                form.addRow(f"{section}.{name}", w)
        return box

    def _plots(self) -> QWidget:
        w = pg.GraphicsLayoutWidget()
        self.depth_plot = w.addPlot(title="target depth (um): estimate +- std, truth")
        self.depth_curve = self.depth_plot.plot(pen="y")
        self.depth_hi = self.depth_plot.plot(pen=pg.mkPen((255, 255, 0, 60)))
        self.depth_lo = self.depth_plot.plot(pen=pg.mkPen((255, 255, 0, 60)))
        self.depth_plot.addItem(pg.FillBetweenItem(self.depth_hi, self.depth_lo, brush=(255, 255, 0, 40)))
        self.truth_curve = self.depth_plot.plot(pen=pg.mkPen("g", style=Qt.PenStyle.DashLine))
        self.err_plot = w.addPlot(title="servo error (px) from the kept offset")
        self.err_curve = self.err_plot.plot(pen="c")
        w.nextRow()
        self.flow_plot = w.addPlot(title="pump rate (nL/s) and volume (nL)")
        self.flow_curve = self.flow_plot.plot(pen="m")
        self.vol_curve = self.flow_plot.plot(pen="w")
        self.perf_plot = w.addPlot(title="perception fps and latency (ms)")
        self.fps_curve = self.perf_plot.plot(pen="g")
        self.lat_curve = self.perf_plot.plot(pen="r")
        return w

    def _trials_panel(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.rate_label = QLabel("no trials yet")
        v.addWidget(self.rate_label)
        self.trial_table = QTableWidget(0, 5)
        self.trial_table.setHorizontalHeaderLabels(["#", "outcome", "failure mode", "duration s", "target"])
        v.addWidget(self.trial_table)
        export = QPushButton("Export CSV")
        export.clicked.connect(self._export)
        v.addWidget(export)
        return w

    # ----- events ---------------------------------------------------------------------------------------
    def emergency_stop(self) -> None:
        """Every device's stop goes out at once, each on a thread of its own; the window does not wait for
        their confirmations (failures reach the log), nor for the controller to finish its step."""
        ESTOP.trigger("STOP button", confirm_s=0.0)
        threading.Thread(target=self.session.abort, args=("emergency stop",), name="abort", daemon=True).start()
        self.statusBar().showMessage("EMERGENCY STOP — reset before moving again")

    def _pause(self, on: bool) -> None:
        """Pause: the controller stops stepping and the pump and motion stop; the video runs on."""
        self.session.paused = on
        if on:
            threading.Thread(target=self.session.stop_motion, args=("pause",), name="pause", daemon=True).start()

    def stop_on_signals(self) -> None:
        """SIGINT (Ctrl-C) and SIGTERM stop the pump and all motion, then close the window. A timer lets
        Python run its signal handlers while Qt's loop holds the main thread."""
        stop_on_signals(self.session, lambda: QTimer.singleShot(0, self.close))
        self._signal_tick = QTimer(self)
        self._signal_tick.timeout.connect(lambda: None)
        self._signal_tick.start(100)

    def start_trial(self) -> None:
        if self.calibration.busy:
            self.bridge.log_line.emit("trial not started: a calibration is running")
            return
        try:
            self.session.start_trial()
        except MicromanipError as exc:
            self.bridge.log_line.emit(f"trial not started: {exc}")
            self.statusBar().showMessage(f"trial not started: {exc}")

    def _on_click(self, ev) -> None:
        """A left click on the video selects the sperm under it; Shift-click sends the tip there."""
        if ev.button() != Qt.MouseButton.LeftButton or self.image.image is None:
            return
        pos = self.image.mapFromScene(ev.scenePos())
        x, y = float(pos.x()), float(pos.y())
        h, w = self.image.image.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            return
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.move_tip_to(x, y)
            return
        est = self.session.latest_estimate
        if est is None:
            return
        from perception.runtime.target import nearest_track

        tid = nearest_track(est.tracks, (x, y))
        self.session.select_target(tid)
        self.bridge.log_line.emit(f"operator selected track {tid}" if tid else "no sperm under the click")

    def move_tip_to(self, x_px: float, y_px: float) -> None:
        """Shift-click: the tip goes to the clicked point at its current depth; the manipulator's tip guard
        checks the target and the path against the floor and the workspace, as for the controller."""
        rig = self.session.rig
        cal = rig.calibration
        try:
            if cal.camera_tf is None or cal.manip_tf is None or rig.manipulator.guard is None:
                raise MicromanipError(f"not calibrated ({cal.summary()})")
            roi = rig.camera.roi
            lab = cal.camera_tf.px_to_lab_um(np.array([x_px, y_px]), (roi.x, roi.y))[0]
            tip = cal.manip_tf.to_lab(rig.manipulator.position_um())
            rig.manipulator.move_to_um(cal.manip_tf.to_manipulator(np.array([lab[0], lab[1], tip[2]])))
        except MicromanipError as exc:
            self.bridge.log_line.emit(f"tip move refused: {exc}")

    def _record(self, on: bool) -> None:
        if self.run_log is None:
            return
        if on:
            from datetime import datetime

            from calibration.store import data_dir

            base = self.record_dir or data_dir() / "recordings"
            folder = base / datetime.now().strftime("%Y%m%d-%H%M%S")
            try:
                self.run_log.start_recording(folder)
                self.statusBar().showMessage(f"recording to {folder}")
            except MicromanipError as exc:
                self.bridge.log_line.emit(f"recording not started: {exc}")
                self.record_button.setChecked(False)
        else:
            folder = self.run_log.stop_recording()
            if folder is not None:
                self.statusBar().showMessage(f"recording saved in {folder}")

    def _on_state(self, tr) -> None:
        self.state_label.setText(tr.dst.value)
        self.statusBar().showMessage(f"{tr.src.value} -> {tr.dst.value}: {tr.reason}")

    def _on_trial(self, rec: TrialRecord) -> None:
        r = self.trial_table.rowCount()
        self.trial_table.insertRow(r)
        for c, v in enumerate((rec.index, rec.outcome, rec.failure_mode or "", f"{rec.duration_s:.1f}", rec.target_id)):
            self.trial_table.setItem(r, c, QTableWidgetItem(str(v)))
        ok = sum(t.outcome == "success" for t in self.session.trials)
        self.rate_label.setText(f"success {ok}/{len(self.session.trials)} ({ok / len(self.session.trials):.0%})")

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export trials", "trials.csv", "CSV (*.csv)")
        if path:
            self.export_trials(Path(path))

    def export_trials(self, path: Path) -> None:
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["index", "outcome", "failure_mode", "duration_s", "target_id"])
            for t in self.session.trials:
                w.writerow([t.index, t.outcome, t.failure_mode, round(t.duration_s, 3), t.target_id])

    def _refresh_devices(self) -> None:
        rig = self.session.rig
        try:
            x, y = rig.stage.position_um()
            m = rig.manipulator.position_um()
            self.dev_labels["stage"].setText(f"{x:.1f}, {y:.1f}")
            self.dev_labels["manipulator"].setText(f"{m[0]:.1f}, {m[1]:.1f}, {m[2]:.1f}")
            self.dev_labels["focus"].setText(f"{rig.focus.z_um():.2f}")
            self.dev_labels["pump"].setText(f"{rig.pump.rate_nl_s():.2f} nL/s, {rig.pump.volume_nl():.2f} nL")
        except Exception as exc:
            self.statusBar().showMessage(f"device read failed: {exc}")

    def _on_frame(self, frame, est) -> None:
        try:
            self._draw(frame, est)
        finally:
            self.bridge.pending = False

    def _draw(self, frame, est) -> None:
        self.frames_shown += 1
        self.image.setImage(frame.pixels, autoLevels=False, levels=(0, full_scale(frame.pixels)))
        if self.frames_shown == 1:
            self.view.autoRange(padding=0.0)
        now = self.session.rig.clock.now()
        ov = build_overlay(est, now, 0.25, self._trails)
        self.heads.setData(pos=ov.heads_px)
        if ov.trails:
            joined = np.concatenate([np.vstack([t, [np.nan, np.nan]]) for t in ov.trails])
            self.trails.setData(joined[:, 0], joined[:, 1])
        else:
            self.trails.setData([], [])
        self.target.setData(pos=[ov.target_px] if ov.target_px else [])
        self.intercept.setData(pos=[ov.intercept_px] if ov.intercept_px else [])
        self.tip.setData(pos=[ov.tip_px] if ov.tip_px else [])
        self.bore.setData(pos=ov.bore_px)
        if ov.target_px:
            self.depth_text.setText(ov.depth_text)
            self.depth_text.setPos(ov.target_px[0] + 12, ov.target_px[1] - 12)
        else:
            self.depth_text.setText("")
        self.stale_text.setText("STALE ESTIMATE" if ov.stale else "")
        while len(self.id_texts) < len(ov.track_ids):
            t = pg.TextItem("", color="c", anchor=(0, 1))
            self.view.addItem(t)
            self.id_texts.append(t)
        for i, item in enumerate(self.id_texts):
            if i < len(ov.track_ids):
                tid, x, y = ov.track_ids[i]
                item.setText(str(tid))
                item.setPos(x + 8, y - 8)
            else:
                item.setText("")
        self._plot(est, now)

    def _pump_volume_nl(self, now: float) -> float:
        """The pump's dispensed volume, asked over its link at the plots' rate (not every frame: a
        query is a round trip on the GUI thread). A failed query plots a gap and says why in the
        status bar; the pump's own fault handling stops it."""
        if now - self._volume_read_at >= PLOT_PERIOD_S:
            self._volume_read_at = now
            try:
                self._volume_nl = self.session.rig.pump.volume_nl()
            except MicromanipError as exc:
                self._volume_nl = np.nan
                self.statusBar().showMessage(f"pump volume not read: {exc}")
        return self._volume_nl

    def _plot(self, est, now: float) -> None:
        s = self._series
        s["t"].append(now - self._t0)
        d = est.target_depth if est is not None else None
        s["depth"].append(d.mean_um if d else np.nan)
        s["std"].append(d.std_um if d else np.nan)
        truth = np.nan
        if est is not None and est.target_px is not None and est.extra.get("truth") is not None:
            from control.depth_sources import truth_for_target

            cell = truth_for_target(est)
            truth = cell.depth_um if cell else np.nan
        s["truth"].append(truth)
        err = np.nan
        if est is not None and est.tip and est.target_px:
            err = float(np.hypot(est.target_px[0] - est.tip.position_px[0], est.target_px[1] - est.tip.position_px[1]))
        s["err"].append(err)
        s["flow"].append(self.session.rig.pump.rate_nl_s())
        s["vol"].append(self._pump_volume_nl(now))
        s["fps"].append(self.session.fps)
        s["lat"].append(est.timings_ms.get("total_ms", np.nan) if est is not None else np.nan)
        if now - self._plotted_at < PLOT_PERIOD_S:  # the plots need no video rate; their axes cost most
            return
        self._plotted_at = now
        t = np.asarray(s["t"])
        depth, std = np.asarray(s["depth"]), np.asarray(s["std"])
        self.depth_curve.setData(t, depth, connect="finite")
        self.depth_hi.setData(t, np.nan_to_num(depth + std), connect="finite")
        self.depth_lo.setData(t, np.nan_to_num(depth - std), connect="finite")
        self.truth_curve.setData(t, np.asarray(s["truth"]), connect="finite")
        self.err_curve.setData(t, np.asarray(s["err"]), connect="finite")
        self.flow_curve.setData(t, np.asarray(s["flow"]))
        self.vol_curve.setData(t, np.asarray(s["vol"]))
        self.fps_curve.setData(t, np.asarray(s["fps"]))
        self.lat_curve.setData(t, np.asarray(s["lat"]), connect="finite")
        self.fps_label.setText(f"{self.session.fps:.1f} fps")
        if est is not None:
            self.latency_label.setText(f"{est.timings_ms.get('total_ms', 0):.0f} ms compute")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        logging.getLogger().removeHandler(self.log_handler)
        self._devices_timer.stop()
        self.session.frame_ready.disconnect(self.bridge.offer_frame)
        self.session.trial_finished.disconnect(self._forward_trial)
        self.session.state_changed.disconnect(self._forward_state)
        self.calibration.cancel()
        if self.run_log is not None:
            self.run_log.close()
        self.session.stop()
        super().closeEvent(event)
