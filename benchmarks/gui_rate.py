"""Operator window: how fast it can draw frames with overlays, and whether drawing slows the control loop.

Three measurements on the simulated rig with the shipped models (offscreen Qt):

1. display capacity: recorded (frame, estimate) pairs replayed into the window as fast as it draws them
   (image, heads, trails, ids, target, tip, depth text, plots) and paints the video widget;
2. the live session alone: camera images/s (the video's source) and control loop steps/s (perception +
   controller on the newest image);
3. the same with the window open: both rates again, and the images the window showed per second.

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


def rates(session, seconds: float, app=None) -> tuple[float, float]:
    """Camera images/s and control loop steps/s of a started session over ``seconds`` (Qt events
    processed when ``app`` is given)."""
    images = [0]

    def on_image(_image, _est) -> None:
        images[0] += 1

    session.frame_ready.connect(on_image)
    session.start()
    time.sleep(2.0)  # models warm, kernels cached
    i0, s0, t0 = images[0], session.steps, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if app is not None:
            app.processEvents()
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    session.frame_ready.disconnect(on_image)
    return (images[0] - i0) / elapsed, (session.steps - s0) / elapsed


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

    # 2. the session alone
    session = LiveSession(RIG, seed=1)
    camera_alone, loop_alone = rates(session, args.seconds)
    session.stop()

    # 3. the session with the window showing its images
    session = LiveSession(RIG, seed=1)
    window = MainWindow(session)
    window.show()
    shown0 = window.frames_shown
    t0 = time.perf_counter()
    camera_gui, loop_gui = rates(session, args.seconds, app)
    shown_rate = (window.frames_shown - shown0) / (time.perf_counter() - t0)
    window.close()
    session.stop()

    print("| measurement | alone | with the window | goal |")
    print("|---|---|---|---|")
    print(f"| display capacity with overlays (replayed frames) | - | {1000 / draw.mean():.0f} fps "
          f"(draw+paint median {np.median(draw):.1f} ms, p99 {np.percentile(draw, 99):.1f} ms) | >= 30 fps |")
    print(f"| camera images (twin render) | {camera_alone:.1f} /s | {camera_gui:.1f} /s | - |")
    print(f"| control loop (perception + controller, newest image) | {loop_alone:.1f} /s | {loop_gui:.1f} /s "
          f"({100 * loop_gui / loop_alone:.0f}%) | ~100% |")
    print(f"| images shown by the window, live | - | {shown_rate:.1f} fps | >= 30 fps |")


if __name__ == "__main__":
    main()
