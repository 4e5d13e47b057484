"""Evaluate shipped or given weights on a dataset; JSON metrics plus a Markdown table (and a confusion
matrix PNG for depth). Normalisation and class vocabularies come from the weights, never from the data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from drivers.errors import ConfigError
from perception.checkpoints import build_checked_model, load_weights
from perception.classes import DEPTHS_UM
from perception.data.otmr import load_otmr, stratified_split
from perception.runtime.detect import heads_from_probs
from perception.training.datasets import DepthCrops, OTMRImages, SegTiles, read_manifest
from perception.training.tasks import TASKS

DEFAULT_WEIGHTS = {"otmr-pose": "otmr_pose", "otmr-depth": "otmr_depth", "depth": "depth_classifier", "seg": "unext_seg"}


def _model(ckpt: dict, source: str | Path) -> torch.nn.Module:
    return build_checked_model(ckpt, source).eval()


def _otmr_dataset(ckpt: dict, data: Path, split: str) -> OTMRImages:
    samples = load_otmr(data)
    trained_on = Path(ckpt["train_config"]["data"]).resolve()
    if split == "auto":
        split = "test" if trained_on == Path(data).resolve() else "all"
    if split != "all":
        samples = stratified_split(samples, seed=ckpt["train_config"].get("split_seed", 0))[split]
    m = ckpt["meta"]
    unknown = {(s.pitch_deg, s.roll_deg) for s in samples} - {tuple(p) for p in m["poses"]}
    if ckpt["task"] == "otmr-pose" and unknown:
        raise ConfigError(f"{data}: poses {sorted(unknown)[:5]} were not in the training vocabulary")
    return OTMRImages(samples, m["image_px"], m["pitches"], m["rolls"], [tuple(p) for p in m["poses"]],
                      m["depth_mean"], m["depth_std"], augment=False)


def seg_centroid_error(model: torch.nn.Module, data: SegTiles) -> float:
    """Median distance (px) from each true head to the nearest predicted head instance."""
    errors = []
    with torch.no_grad():
        for x, y in DataLoader(data, batch_size=8):
            probs = model(x.to(next(model.parameters()).device)).softmax(1).cpu().numpy()
            for p, mask in zip(probs, y.numpy()):
                n, _, _, cents = cv2.connectedComponentsWithStats((mask == 1).astype(np.uint8))
                pred = heads_from_probs(p, 1.0, um_per_px=1.0, min_area_um2=0.0)
                for c in cents[1:]:
                    if pred:
                        errors.append(min(np.hypot(d.centroid_px[0] - c[0], d.centroid_px[1] - c[1]) for d in pred))
    return float(np.median(errors)) if errors else float("nan")


def true_height_top1(data: Path, split: str, zero_offset_um: float) -> dict[str, float]:
    """Top-1 of a reader that knows each head's true height (``true_depth_um``, written by the twin) and
    labels it with the depth class nearest to that height plus the weights' ``zero_offset_um``; overall
    (``"all"``) and by motility. The labels' own noise caps it: the operator's zero plane lies at a different
    height above each cell's head, and a live cell moves between planes. A network reads appearance, not the
    height, but whatever it reads the labels scatter about, so its top-1 sits near this figure."""
    rows = [r for r in read_manifest(data) if (split == "all" or r["split"] == split)
            and r.get("true_depth_um") not in (None, "")]
    if not rows:
        raise ConfigError(f"{data}: no crops with true_depth_um in split {split!r} (a set the twin wrote has them)")
    hits: dict[str, list[bool]] = {"all": []}
    for r in rows:
        read = min(DEPTHS_UM, key=lambda d: abs(d - float(r["true_depth_um"]) - zero_offset_um))
        hit = read == round(float(r["depth_um"]), 1)
        hits["all"].append(hit)
        hits.setdefault(r.get("motility") or "unknown", []).append(hit)
    return {k: float(np.mean(v)) for k, v in hits.items()}


def evaluate(task: str, data: Path, weights: str | Path | None = None, split: str = "auto",
             device: str = "cpu") -> dict[str, Any]:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    ckpt = load_weights(weights or DEFAULT_WEIGHTS[task], task)
    model = _model(ckpt, weights or DEFAULT_WEIGHTS[task]).to(device)
    if task.startswith("otmr"):
        ds = _otmr_dataset(ckpt, data, split)
    elif task == "depth":
        ds = DepthCrops(data, "test" if split == "auto" else split, augment=False)
    else:
        ds = SegTiles(data, "test" if split == "auto" else split, augment=False)
    if len(ds) == 0:
        raise ConfigError(f"{data}: no samples in split {split!r}")
    metrics = TASKS[task].evaluate(model, DataLoader(ds, batch_size=32), torch.device(device), ckpt["meta"])
    metrics.pop("score", None)
    if task == "seg":
        metrics["centroid_error_px"] = seg_centroid_error(model, ds)
    metrics["n"] = len(ds)
    return metrics


def confusion_png(confusion: list[list[int]], labels: list[float], path: Path) -> Path:
    """A readable confusion matrix image (rows true, columns predicted)."""
    cm = np.asarray(confusion, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    cell, pad = 48, 60
    n = len(labels)
    img = np.full((pad + n * cell, pad + n * cell, 3), 255, np.uint8)
    for i in range(n):
        for j in range(n):
            v = norm[i, j]
            colour = (int(255 * (1 - v)), int(255 * (1 - 0.6 * v)), 255)
            y0, x0 = pad + i * cell, pad + j * cell
            img[y0 : y0 + cell, x0 : x0 + cell] = colour
            cv2.putText(img, f"{int(cm[i, j])}", (x0 + 6, y0 + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        cv2.putText(img, f"{labels[i]:+.1f}", (4, pad + i * cell + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"{labels[i]:+.1f}", (pad + i * cell + 4, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, "true \\ predicted (um)", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)
    return path


def markdown_table(task: str, metrics: dict[str, Any]) -> str:
    rows = [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in metrics.items() if not isinstance(v, list)]
    return "\n".join([f"### eval {task}", "", "| metric | value |", "|---|---|", *rows, ""])


def write_reports(task: str, metrics: dict[str, Any], json_out: Path | None) -> str:
    md = markdown_table(task, metrics)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        if task == "depth":
            png = confusion_png(metrics["confusion"], list(DEPTHS_UM), json_out.with_suffix(".confusion.png"))
            metrics = {**metrics, "confusion_png": str(png)}
        json_out.write_text(json.dumps(metrics, indent=1))
        json_out.with_suffix(".md").write_text(md)
    return md
