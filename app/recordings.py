"""``micromanip track`` and ``micromanip eval heads``: the project's head detection and tracking over a
recording (video, image folder, multi-page TIFF), written as MOTChallenge rows and scored against labels.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from drivers.errors import MicromanipError
from drivers.recording import Recording, open_recording


def parse_frames(text: str | None, n: int) -> tuple[int, int]:
    """``A:B`` (0-based, B excluded, either may be empty, negative counts from the end) -> (start, stop)."""
    if text is None:
        return 0, n
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise MicromanipError(f"--frames: expected A:B (0-based, B excluded), got {text!r}") from None
    start, stop, _ = slice(start, stop).indices(n)
    if start >= stop:
        raise MicromanipError(f"--frames {text}: no frame of the {n} in the input")
    return start, stop


def check_scale(um_per_px: float | None, fps: float | None, recording: Recording | None) -> tuple[float, float]:
    if um_per_px is None or not (math.isfinite(um_per_px) and 0 < um_per_px <= 100):
        raise MicromanipError(f"--um-per-px: the pixel size at the sample in um (0 < X <= 100), got {um_per_px}")
    rate = fps if fps is not None else (recording.fps if recording is not None else None)
    if rate is None:
        raise MicromanipError(f"{recording.path if recording else 'input'}: stores no frame rate; give --fps")
    if not (math.isfinite(rate) and rate > 0):
        raise MicromanipError(f"--fps: must be > 0, got {rate}")
    return um_per_px, rate


def track_to_mot(input_path: Path, um_per_px: float | None, fps: float | None, out: Path,
                 frames: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Track heads over the input and write ``out`` (MOTChallenge rows, frame 1-based, written as they
    come); returns a summary (frames, tracks, frames per second)."""
    from tqdm import tqdm

    from perception.evaluation.labels import mot_row
    from perception.runtime.video_tracking import recording_config, track_recording

    with open_recording(input_path) as rec:
        um_per_px, rate = check_scale(um_per_px, fps, rec)
        start, stop = parse_frames(frames, len(rec))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fh = out.open("w")
        except OSError as exc:
            raise MicromanipError(f"{out}: cannot write ({exc.strerror})") from None
        bar = tqdm(total=stop - start, desc=f"track {input_path.name}", unit="frame", disable=not progress)

        def write(res) -> None:
            for f, tid, box, conf in zip(res.track_frames, res.track_ids, res.track_xywh, res.track_conf):
                fh.write(mot_row(int(f), tid, box, conf) + "\n")
            bar.update(1)

        t0 = time.perf_counter()
        with fh:
            _, tracks = track_recording(rec, um_per_px, rate, start=start, stop=stop, on_frame=write)
        bar.close()
        wall = time.perf_counter() - t0
    return {"frames": int(len(tracks.frames)), "rows": int(len(tracks.frame)),
            "tracks": int(len(set(tracks.track_id.tolist()))), "wall_s": wall,
            "fps": len(tracks.frames) / wall if wall > 0 else 0.0, "out": str(out)}


def eval_heads(labels_path: Path, input_path: Path | None, pred_path: Path | None, um_per_px: float | None,
               fps: float | None, frames: str | None, progress: bool = True,
               seg_weights: str | None = None) -> dict[str, Any]:
    """Score the project's detection and tracking on ``input_path`` (or a finished MOT file ``pred_path``)
    against the labels; frames are 0-based indices of the input (of the labels with ``pred_path``).
    ``seg_weights``: a shipped model name or weights file for the segmentation (default: the shipped one)."""
    from tqdm import tqdm

    from perception.evaluation import load_labels, load_mot, score_detections, score_heads
    from perception.runtime.pipeline import Models, PerceptionPipeline
    from perception.runtime.video_tracking import recording_config, track_recording

    if (input_path is None) == (pred_path is None):
        raise MicromanipError("give --input (run detection and tracking) or --pred (score a MOT file), not both")
    truth = load_labels(labels_path)
    report: dict[str, Any] = {"labels": str(labels_path), "labelled_boxes": int((~truth.ignore).sum()),
                              "labelled_frames": int(len(truth.frames)),
                              "labelled_tracks": int(len(set(truth.track_id.tolist()))) if truth.has_ids else None}
    if pred_path is not None:
        pred = load_mot(pred_path, labels=False)
        last = int(max(truth.frames.max(initial=-1), pred.frame.max(initial=-1))) + 1
        start, stop = parse_frames(frames, last)
        report.update(pred=str(pred_path), frames=[start, stop])
        report["tracks"] = score_heads(pred, truth, range(start, stop))
        return report
    with open_recording(input_path) as rec:
        um_per_px, rate = check_scale(um_per_px, fps, rec)
        start, stop = parse_frames(frames, len(rec))
        _check_names(rec, truth.names, start, stop)
        cfg = recording_config(**({"seg_weights": seg_weights} if seg_weights else {}))
        models = Models.load(cfg)
        bar = tqdm(total=stop - start, desc=f"eval {input_path.name}", unit="frame", disable=not progress)
        t0 = time.perf_counter()
        dets, tracks = track_recording(rec, um_per_px, rate, models, start, stop, cfg, on_frame=lambda _: bar.update(1))
        wall = time.perf_counter() - t0
        bar.close()
        scale = PerceptionPipeline(models, cfg).seg_scale(um_per_px)
    scored = range(start, stop)
    report.update(input=str(input_path), frames=[start, stop], um_per_px=um_per_px, fps=rate,
                  seg_weights=cfg.seg_weights, network_pixel_um=models.seg_pixel_um, network_scale=scale,
                  frames_per_s=(stop - start) / wall if wall > 0 else 0.0,
                  detections=score_detections(dets, truth, scored), tracks=score_heads(tracks, truth, scored))
    return report


def _check_names(rec: Recording, names: dict[int, str], start: int, stop: int) -> None:
    """Labels that name their images must name the input's frames, index for index."""
    if rec.kind != "images" or not names:
        return
    for i in range(start, min(stop, len(rec))):
        if i in names and Path(names[i]).name != rec.name(i):
            raise MicromanipError(f"labels name frame {i} {names[i]!r} but the input's frame {i} is {rec.name(i)!r}")


def format_report(report: dict[str, Any]) -> str:
    """The figures as Markdown tables."""
    lines = []
    rows = []
    if "detections" in report:
        rows.append(("head detections (each frame)", report["detections"]))
    rows.append(("tracked heads (confirmed tracks seen in the frame)", report["tracks"]["detection"]))
    lines += ["| scored | frames | labelled | predicted | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {d['frames']} | {d['labelled']} | {d['predicted']} | {d['precision']:.3f} | "
              f"{d['recall']:.3f} | {d['f1']:.3f} |" for name, d in rows]
    t = report["tracks"].get("tracking")
    if t is not None:
        lines += ["", "| MOTA | IDF1 | HOTA | DetA | AssA | ID switches | FP | FN | labelled / predicted tracks |",
                  "|---|---|---|---|---|---|---|---|---|",
                  f"| {t['mota']:.3f} | {t['idf1']:.3f} | {t['hota']:.3f} | {t['deta']:.3f} | {t['assa']:.3f} | "
                  f"{t['id_switches']} | {t['false_positives']} | {t['misses']} | {t['labelled_tracks']} / "
                  f"{t['predicted_tracks']} |"]
    else:
        lines += ["", f"tracking: not scored ({report['tracks'].get('tracking_note', '')})"]
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
    except OSError as exc:
        raise MicromanipError(f"{path}: cannot write ({exc.strerror})") from None
