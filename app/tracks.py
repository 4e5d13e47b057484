"""Tracking sequences rendered through the simulated rig, with ground-truth ids per frame."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2


def generate_tracks(config: Any, n_seq: int, n_frames: int, seed: int, out: Path,
                    roi: tuple[int, int, int, int] = (640, 360, 640, 480)) -> Path:
    """Write ``seqNN/frameNNNNN.png`` and one ``tracks.csv`` (seq, frame, id, x_px, y_px, depth_um, motility)."""
    from app.rig import build_rig
    from drivers.interfaces import Roi

    out.mkdir(parents=True, exist_ok=True)
    path = out / "tracks.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seq", "frame", "time_s", "id", "x_px", "y_px", "depth_um", "motility"])
        for s in range(n_seq):
            scene = dict(config.scene, n_sperm=config.scene.get("n_sperm", 12), field_half_size_um=[60, 45])
            cfg = config.model_copy(update={"scene": scene})
            with build_rig(cfg, seed=seed * 1000 + s) as rig:
                rig.camera.set_roi(Roi(*roi))
                seq_dir = out / f"seq{s:02d}"
                seq_dir.mkdir(exist_ok=True)
                for f in range(n_frames):
                    frame = rig.frames.snap()
                    cv2.imwrite(str(seq_dir / f"frame{f:05d}.png"), frame.pixels)
                    for t in frame.truth.sperm:
                        if -10 <= t.head_px[0] < roi[2] + 10 and -10 <= t.head_px[1] < roi[3] + 10:
                            writer.writerow([s, f, round(frame.capture_time_s, 5), t.id, round(t.head_px[0], 2),
                                             round(t.head_px[1], 2), round(t.depth_um, 3), t.motility.value])
    return path
