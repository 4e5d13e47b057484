"""Head detection and tracking on the real development video's held-out frames when the recording differs
the ways other rigs and labs differ: the pixel size declared wrong (another magnification or camera),
softer optics, more sensor noise, harsher compression, lower contrast, uneven illumination, a darker
exposure, a coarser camera. Each condition changes the held-out frames (``real_val_from_frame`` on, read
from ``configs/train/seg.yaml``) in one way and scores them as ``micromanip eval heads`` does, so the table
tells which of a new rig's differences the shipped perception tolerates and which it does not. The real
videos of other labs that judge the project are not here; these are the differences they are known to have.

    .venv/bin/python benchmarks/heads_robustness.py [--data DIR] [--max-frames N] [--no-save]

Saves docs/results/heads_robustness.json (benchmarks/result_store.py).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from app.recordings import eval_heads
from drivers.recording import to_grey
from heads_real import dev_video_parser  # benchmarks/ (this script's folder)
from result_store import Headline, Result, Table, save_result

Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _blur(sigma_px: float) -> Perturb:
    return lambda im, rng: cv2.GaussianBlur(im, (0, 0), sigma_px)


def _noise(sd: float) -> Perturb:
    return lambda im, rng: np.clip(np.rint(im + rng.normal(0.0, sd, im.shape)), 0, 255).astype(np.uint8)


def _jpeg(quality: int) -> Perturb:
    return lambda im, rng: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 0)


def _contrast(factor: float) -> Perturb:
    return lambda im, rng: np.clip(np.rint(im.mean() + factor * (im - im.mean())), 0, 255).astype(np.uint8)


def _gain(factor: float) -> Perturb:
    return lambda im, rng: np.clip(np.rint(im * factor), 0, 255).astype(np.uint8)


def _ramp(lo: float, hi: float) -> Perturb:
    def f(im: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(np.rint(im * np.linspace(lo, hi, im.shape[1])[None, :]), 0, 255).astype(np.uint8)
    return f


def _coarse(factor: float) -> Perturb:
    def f(im: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = im.shape
        small = cv2.resize(im, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return f


#: (condition, what it stands for, pixel change or None, declared um/px as a factor of the true one)
CONDITIONS: list[tuple[str, str, Perturb | None, float]] = [
    ("as recorded", "the held-out frames, saved losslessly", None, 1.0),
    ("pixel size declared 20% small", "another objective or camera, the user's um/px off by -20%", None, 0.8),
    ("pixel size declared 20% large", "the same, +20%", None, 1.2),
    ("blur s.d. 0.4 um", "softer optics, a thicker dish bottom, slight defocus", _blur(1.0), 1.0),
    ("noise s.d. 6 grey levels", "a noisier camera or shorter exposure, gain up", _noise(6.0), 1.0),
    ("JPEG quality 20", "a recording compressed hard", _jpeg(20), 1.0),
    ("contrast x0.5", "lower contrast: condenser open, thicker medium", _contrast(0.5), 1.0),
    ("illumination ramp 0.7-1.3", "uneven Koehler illumination across the field", _ramp(0.7, 1.3), 1.0),
    ("exposure x0.5", "a darker frame", _gain(0.5), 1.0),
    ("camera pixels 2x coarser", "a lower-resolution camera (frames resampled back)", _coarse(0.5), 1.0),
]


def perturbed_copy(data: Path, out: Path, perturb: Perturb | None, frames: range, seed: int) -> tuple[Path, Path]:
    """The video's frames in ``frames`` changed by ``perturb`` (PNG, lossless) in ``out``/train, and its
    labels with the file names to match; other frames are copied unchanged."""
    labels = json.loads((data / "annotations" / "train.json").read_text())
    (out / "train").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for im in labels["images"]:
        path = data / "train" / im["file_name"]
        pixels = to_grey(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), str(path))  # as the recording reads it
        if perturb is not None and im["frame_id"] in frames:
            pixels = perturb(pixels, rng)
        im["file_name"] = Path(im["file_name"]).with_suffix(".png").name
        cv2.imwrite(str(out / "train" / im["file_name"]), pixels)
    (out / "train.json").write_text(json.dumps(labels))
    return out / "train.json", out / "train"


def main() -> None:
    seg, ap = dev_video_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--max-frames", type=int, default=None, help="score at most this many held-out frames")
    ap.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    args = ap.parse_args()
    if not (args.data / "annotations" / "train.json").is_file():
        print(f"{args.data}: no labelled video here (annotations/train.json): nothing to measure")
        return
    um_per_px, start = seg.real_um_per_px, seg.real_val_from_frame
    n = len(list((args.data / "train").iterdir()))
    stop = n if args.max_frames is None else min(n, start + args.max_frames)
    rows, data = [], {"um_per_px": um_per_px, "frames": [start, stop], "conditions": {}}
    for k, (name, why, perturb, scale) in enumerate(CONDITIONS):
        with tempfile.TemporaryDirectory() as tmp:
            labels, frames = perturbed_copy(args.data, Path(tmp), perturb, range(start, stop), seed=k)
            r = eval_heads(labels, frames, None, um_per_px * scale, args.fps, f"{start}:{stop}", progress=False)
        d, t = r["detections"], r["tracks"]["tracking"]
        data["conditions"][name] = {"stands_for": why, "declared_um_per_px": um_per_px * scale, **r}
        rows.append([name, why, f"{d['precision']:.3f}", f"{d['recall']:.3f}", f"{d['f1']:.3f}", f"{t['mota']:.3f}",
                     f"{t['idf1']:.3f}"])
        print(" | ".join(str(c) for c in rows[-1]), flush=True)
    base = data["conditions"][CONDITIONS[0][0]]["detections"]["f1"]
    worst = min(rows[1:], key=lambda r: float(r[4]))
    table = Table(f"Held-out frames {start}-{stop - 1} of the real development video, each changed one way",
                  ["condition", "stands for", "precision", "recall", "F1", "MOTA", "IDF1"], rows, notes=(
                      f"Shipped weights, detections and confirmed tracks scored as `micromanip eval heads --um-per-px "
                      f"{um_per_px:g} --fps {args.fps:g} --frames {start}:` scores them (centre in box, one-to-one; "
                      "py-motmetrics). Frames re-saved as PNG; blur, noise and resampling in the video's own pixels "
                      f"({um_per_px:g} um/px)."))
    if args.no_save:
        return
    save_result(Result("heads_robustness", "Head detection on real video changed as other rigs differ", [table],
                       headlines=[Headline("head detection on the real held-out frames changed as other rigs differ "
                                           f"({len(rows) - 1} ways)", f"F1 {base:.2f} as recorded; worst {worst[4]} "
                                           f"({worst[0]})", "F1 >= 0.90 on other microscopes")],
                       section="perception on video", data=data))


if __name__ == "__main__":
    main()
