"""Operator window: how fast it can draw frames with overlays, and whether drawing slows the control loop.

Three measurements on the simulated rig with the shipped models (offscreen Qt):

1. display capacity: recorded (frame, estimate) pairs replayed into the window as fast as it draws them
   (image, heads, trails, ids, target, tip, depth text, plots) and paints the video widget;
2. the live loop (camera -> perception -> controller) alone, frames/s;
3. the same loop with the window open: loop frames/s and frames the window showed per second.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_rate.py [--seconds 20] [--replay 300]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "configs" / "sim.yaml"


def loop_rate(session, seconds: float, app=None) -> tuple[float, int]:
    """Frames/s of the session's loop over ``seconds`` (Qt events processed when ``app`` is given)."""
    count = [0]

    def on_frame(_frame, _est) -> None:
        count[0] += 1

    session.frame_ready.connect(on_frame)
    session.start()
    time.sleep(2.0)  # models warm, kernels cached
    c0, t0 = count[0], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if app is not None:
            app.processEvents()
        time.sleep(0.002)
    rate = (count[0] - c0) / (time.perf_counter() - t0)
    session.frame_ready.disconnect(on_frame)
    return rate, count[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--replay", type=int, default=300, help="frames drawn in the capacity test")
    args = ap.parse_args()

    from PyQt6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow
    from app.gui.session import LiveSession

    app = QApplication.instance() or QApplication([])

    # 1. display capacity, with frames and estimates recorded from the rig first
    session = LiveSession(RIG, seed=0)
    recorded = []
    for _ in range(40):
        frame = session.rig.frames.snap()
        recorded.append((frame, session.pipeline.process(frame)))
    window = MainWindow(session)
    window.show()
    app.processEvents()
    draw_ms = []
    for i in range(args.replay):
        t0 = time.perf_counter()
        window._on_frame(*recorded[i % len(recorded)])
        window.video.repaint()
        app.processEvents()
        draw_ms.append(1000 * (time.perf_counter() - t0))
    draw = np.array(draw_ms[20:])
    window.close()
    session.stop()

    # 2. the loop alone
    session = LiveSession(RIG, seed=1)
    alone, _ = loop_rate(session, args.seconds)
    session.stop()

    # 3. the loop with the window showing its frames
    session = LiveSession(RIG, seed=1)
    window = MainWindow(session)
    window.show()
    shown0 = window.frames_shown
    t0 = time.perf_counter()
    with_gui, emitted = loop_rate(session, args.seconds, app)
    shown_rate = (window.frames_shown - shown0) / (time.perf_counter() - t0)
    window.close()
    session.stop()

    print("| measurement | value | goal |")
    print("|---|---|---|")
    print(f"| display capacity with overlays (replayed frames) | {1000 / draw.mean():.0f} fps "
          f"(draw+paint median {np.median(draw):.1f} ms, p99 {np.percentile(draw, 99):.1f} ms) | >= 30 fps |")
    print(f"| live loop alone (render + perception + controller) | {alone:.1f} frames/s | - |")
    print(f"| live loop with the window open | {with_gui:.1f} frames/s ({100 * with_gui / alone:.0f}% of alone) | "
          "~100% |")
    print(f"| frames shown by the window, live | {shown_rate:.1f} fps | = loop rate |")


if __name__ == "__main__":
    main()
