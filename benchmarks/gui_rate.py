"""Operator window: how fast it can draw frames with overlays, and whether drawing slows the control loop.

Three measurements on the simulated rig with the shipped models (offscreen Qt):

1. display capacity: recorded (frame, estimate) pairs replayed into the window as fast as it draws them
   (image, heads, trails, ids, target, tip, depth text, plots) and paints the video widget;
2. the live session alone: camera images/s (the video's source) and control loop steps/s (perception +
   controller on the newest image);
3. the same with the window open: both rates again, and the images the window showed per second;
4. 2 and 3 with a camera that costs no CPU to make its images: Micro-Manager's demo camera through the
   real Micro-Manager driver (`mm-test-adapters`), every other device simulated. Its images hold no cells,
   so perception segments and finds nothing (no tracks, no depth crops): this row shows what the window
   and the loop do when the twin's render is not on the same 2 cores, as with a real camera.

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

    demo = demo_camera_rates(args.seconds, app)

    print("| measurement | alone | with the window | goal |")
    print("|---|---|---|---|")
    print(f"| display capacity with overlays (replayed frames) | - | {1000 / draw.mean():.0f} fps "
          f"(draw+paint median {np.median(draw):.1f} ms, p99 {np.percentile(draw, 99):.1f} ms) | >= 30 fps |")
    print(f"| camera images (twin render) | {camera_alone:.1f} /s | {camera_gui:.1f} /s | - |")
    print(f"| control loop (perception + controller, newest image) | {loop_alone:.1f} /s | {loop_gui:.1f} /s "
          f"({100 * loop_gui / loop_alone:.0f}%) | ~100% |")
    print(f"| images shown by the window, live | - | {shown_rate:.1f} fps | >= 30 fps |")
    if demo is None:
        print("| Micro-Manager demo camera | not run: pymmcore-plus or mm-test-adapters missing | | |")
        return
    (cam_a, loop_a), (cam_w, loop_w), shown_w = demo
    print(f"| demo camera (no render): camera images | {cam_a:.1f} /s | {cam_w:.1f} /s | - |")
    print(f"| demo camera: control loop | {loop_a:.1f} /s | {loop_w:.1f} /s ({100 * loop_w / loop_a:.0f}%) | ~100% |")
    print(f"| demo camera: images shown by the window | - | {shown_w:.1f} fps | >= 30 fps |")


def demo_camera_rates(seconds: float, app):
    """Rates alone and with the window on the sim rig with Micro-Manager's demo camera; None without it."""
    try:
        import mm_test_adapters  # noqa: F401
        import pymmcore_plus  # noqa: F401
    except ImportError:
        return None
    import tempfile

    import yaml

    from app.gui.main_window import MainWindow
    from app.gui.session import LiveSession

    data = yaml.safe_load(RIG.read_text())
    data["clock"] = "real"
    data["camera"] = {"driver": "micromanager", "config_file": str(ROOT / "configs" / "micromanager" / "demo.cfg")}
    data.setdefault("control", {}).setdefault("trials", {})["roi_px"] = [0, 64, 512, 384]  # 512x512 sensor
    with tempfile.TemporaryDirectory() as tmp:
        rig = Path(tmp) / "demo-camera.yaml"
        rig.write_text(yaml.safe_dump(data))
        session = LiveSession(rig, seed=1)
        alone = rates(session, seconds)
        session.stop()
        session = LiveSession(rig, seed=1)
        window = MainWindow(session)
        window.show()
        shown0, t0 = window.frames_shown, time.perf_counter()
        with_gui = rates(session, seconds, app)
        shown = (window.frames_shown - shown0) / (time.perf_counter() - t0)
        window.close()
        session.stop()
    return alone, with_gui, shown


if __name__ == "__main__":
    main()
