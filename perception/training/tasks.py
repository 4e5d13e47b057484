"""What differs between tasks: data, loss, validation metrics (``score``: higher is better), metadata
stored with the weights (class vocabularies, depth standardisation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from perception.classes import DEPTHS_UM, FLAGELLUM, HEAD, NOT_HEAD, PIPETTE, SEG_CLASSES, SEG_IGNORE
from perception.data.otmr import load_otmr, pose_vocab, stratified_split
from perception.models.fgaf import WLoss
from perception.training.config import TrainConfig
from perception.runtime.seg_input import NORMALISATION
from perception.training.datasets import DepthCrops, OTMRImages, SegTiles, read_manifest

log = logging.getLogger(__name__)


@dataclass
class TaskData:
    train: Dataset
    val: Dataset
    test: Dataset
    meta: dict[str, Any]


def f1_macro(pred: np.ndarray, true: np.ndarray, n_classes: int) -> float:
    scores = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


class Task:
    name = ""

    def data(self, cfg: TrainConfig) -> TaskData:
        raise NotImplementedError

    def loss(self, out: Any, target: Any, cfg: TrainConfig) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: DataLoader, device: torch.device, meta: dict) -> dict:
        raise NotImplementedError


def zero_offset_um(data: Path) -> float:
    """How far the head's mid-plane lies below the labels' zero plane in a z-stack set: the median of label
    less the head's true height over the training split (``true_depth_um``, written by the twin; 0 for sets
    without it). The runtime subtracts it, so that depth means the head's height above the focal plane."""
    rows = [r for r in read_manifest(data) if r.get("split") == "train" and r.get("true_depth_um") not in (None, "")]
    if not rows:
        return 0.0
    return round(float(np.median([float(r["depth_um"]) - float(r["true_depth_um"]) for r in rows])), 3)


class DepthTask(Task):
    name = "depth"

    def data(self, cfg: TrainConfig) -> TaskData:
        mk = lambda split, aug: DepthCrops(cfg.data, split, aug, cfg.seed, cfg.max_train_samples if aug else None,  # noqa: E731
                                           cfg.scale_jitter)
        return TaskData(mk("train", True), mk("val", False), mk("test", False),
                        {"depths_um": list(DEPTHS_UM), "image_px": cfg.image_px,
                         "zero_offset_um": zero_offset_um(cfg.data)})

    def loss(self, out, target, cfg):
        if cfg.loss == "wloss":
            return WLoss()(out, target)
        return F.cross_entropy(out, target, label_smoothing=cfg.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model, loader, device, meta):
        model.eval()
        logits, labels = [], []
        for x, y in loader:
            logits.append(model(x.to(device)).float().cpu())
            labels.append(y)
        logits, labels = torch.cat(logits), torch.cat(labels)
        depths = torch.tensor(meta["depths_um"])
        pred = logits.argmax(1)
        top3 = logits.topk(3, dim=1).indices.eq(labels[:, None]).any(1).float().mean().item()
        err = (depths[pred] - depths[labels]).abs()
        n = len(depths)
        confusion = np.zeros((n, n), int)
        np.add.at(confusion, (labels.numpy(), pred.numpy()), 1)
        top1 = (pred == labels).float().mean().item()
        return {"score": top1, "top1": top1, "top3": top3, "mean_abs_error_um": err.mean().item(),
                "std_abs_error_um": err.std().item(), "var_abs_error_um2": err.var().item(), "n": len(labels),
                "confusion": confusion.tolist()}


class SegTask(Task):
    """Head / flagellum / pipette segmentation on the twin's randomised tiles and, when given, crops of a
    labelled real video (its first frames; the rest is validation). Labels: 0-3 the classes, 4 "not a head"
    (background or flagellum: real labels say nothing of tails), 255 ignored.

    The checkpoint score is the head F1 on the twin's validation tiles, so the real validation frames
    never choose the weights; their F1 is reported beside it."""

    name = "seg"
    #: per label value 0-4: background, head, flagellum, pipette, not-a-head
    label_weights = torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0])
    #: which classes each label value allows
    allowed = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)

    def __init__(self) -> None:
        self.real_val: list = []

    def data(self, cfg: TrainConfig) -> TaskData:
        from torch.utils.data import ConcatDataset

        from perception.training.datasets import RealSegFrames
        from perception.training.real_frames import load_labelled_video, split_by_time

        crop = cfg.image_px
        twin = SegTiles(cfg.data, "train", True, cfg.seed, cfg.max_train_samples, crop)
        train: Dataset = twin
        real_note = "none (twin only)"
        self.real_val = []
        if cfg.real_video is not None and Path(cfg.real_video).is_dir():
            frames = load_labelled_video(cfg.real_video)
            real_train, self.real_val = split_by_time(frames, cfg.real_val_from_frame)
            n_real = int(round(len(twin) * cfg.real_fraction / (1 - cfg.real_fraction)))
            train = ConcatDataset([twin, RealSegFrames(real_train, cfg.real_um_per_px, cfg.um_per_px_range, crop,
                                                       n_real, cfg.seed + 1)])
            real_note = (f"{Path(cfg.real_video).name}: frames {real_train[0].index}-{real_train[-1].index} "
                         f"({len(real_train)}), validation {self.real_val[0].index}-{self.real_val[-1].index}")
        elif cfg.real_video is not None:
            log.warning("real video %s not found: training on the twin alone", cfg.real_video)
        meta = {"classes": SEG_CLASSES, "input_pixel_um": cfg.input_pixel_um,
                "um_per_px_range": list(cfg.um_per_px_range), "normalisation": NORMALISATION,
                "real_training_frames": real_note, "real_um_per_px": cfg.real_um_per_px}
        return TaskData(train, SegTiles(cfg.data, "val", False, crop_px=None),
                        SegTiles(cfg.data, "test", False, crop_px=None), meta)

    def loss(self, out, target, cfg):
        valid = target != SEG_IGNORE
        t = torch.where(valid, target, torch.zeros_like(target))
        logp = out.float().log_softmax(1)
        allowed = self.allowed.to(out.device)[t].permute(0, 3, 1, 2)  # (N, C, H, W)
        lp = torch.logsumexp(logp.masked_fill(~allowed, -1e4), dim=1)
        w = self.label_weights.to(out.device)[t] * valid
        ce = -(lp * w).sum() / w.sum().clamp_min(1e-6)
        prob = logp.exp()
        dice = []
        for c, where in ((HEAD, valid), (PIPETTE, valid), (FLAGELLUM, valid & (t < NOT_HEAD))):
            p, g = prob[:, c] * where, ((t == c) & where).float()
            dice.append(1 - (2 * (p * g).sum() + 1) / (p.sum() + g.sum() + 1))
        return ce + torch.stack(dice).mean()

    @torch.no_grad()
    def evaluate(self, model, loader, device, meta):
        from perception.training.seg_metrics import head_f1_on_tiles, real_head_f1

        model.eval()
        n_cls = len(SEG_CLASSES)
        inter, union = np.zeros(n_cls), np.zeros(n_cls)
        counts = np.zeros(3)
        for x, y in loader:
            probs = model(x.to(device)).float().softmax(1).cpu().numpy()
            pred, y = probs.argmax(1), y.numpy()
            known = y < n_cls
            for c in range(n_cls):
                p, t = (pred == c) & known, (y == c) & known
                inter[c] += np.sum(p & t)
                union[c] += np.sum(p | t)
            counts += head_f1_on_tiles(probs, y)
        iou = inter / np.maximum(union, 1)
        names = list(SEG_CLASSES)
        out = {f"iou_{names[c]}": float(iou[c]) for c in range(1, n_cls)}
        out["miou"] = float(iou[1:].mean())
        tp, fp, fn = counts
        out["twin_head_precision"] = float(tp / max(tp + fp, 1))
        out["twin_head_recall"] = float(tp / max(tp + fn, 1))
        out["twin_head_f1"] = float(2 * tp / max(2 * tp + fp + fn, 1))
        if self.real_val:
            out.update({f"real_val_{k}": v for k, v in real_head_f1(model, self.real_val, meta, device).items()})
        out["score"] = out["twin_head_f1"]
        return out


class OTMRTask(Task):
    """Shared data handling for the OTMR pose and depth tasks (stratified 60/20/20 split)."""

    def data(self, cfg: TrainConfig) -> TaskData:
        samples = load_otmr(cfg.data)
        splits = stratified_split(samples, seed=cfg.split_seed)
        pitches, rolls, poses = pose_vocab(samples)
        depths = np.array([s.depth for s in splits["train"]])
        meta = {"pitches": pitches, "rolls": rolls, "poses": [list(p) for p in poses],
                "depth_mean": float(depths.mean()), "depth_std": float(depths.std()), "image_px": cfg.image_px}
        mk = lambda items, aug: OTMRImages(items, cfg.image_px, pitches, rolls, poses, meta["depth_mean"],  # noqa: E731
                                           meta["depth_std"], aug, cfg.seed)
        return TaskData(mk(splits["train"], True), mk(splits["val"], False), mk(splits["test"], False), meta)


class OTMRPoseTask(OTMRTask):
    name = "otmr-pose"

    def loss(self, out, target, cfg):
        loss = F.cross_entropy(out["pitch"], target["pitch"], label_smoothing=cfg.label_smoothing)
        loss = loss + F.cross_entropy(out["roll"], target["roll"], label_smoothing=cfg.label_smoothing)
        if "pose" in out:
            loss = loss + F.cross_entropy(out["pose"], target["pose"], label_smoothing=cfg.label_smoothing)
        return loss

    @torch.no_grad()
    def evaluate(self, model, loader, device, meta):
        model.eval()
        pp, pr, tp, tr = [], [], [], []
        for x, t in loader:
            out = model(x.to(device))
            pp.append(out["pitch"].argmax(1).cpu())
            pr.append(out["roll"].argmax(1).cpu())
            tp.append(t["pitch"])
            tr.append(t["roll"])
        pp, pr, tp, tr = (torch.cat(v).numpy() for v in (pp, pr, tp, tr))
        n_roll = len(meta["rolls"])
        acc = float(np.mean((pp == tp) & (pr == tr)))
        return {"score": acc, "accuracy": acc, "pitch_accuracy": float(np.mean(pp == tp)),
                "roll_accuracy": float(np.mean(pr == tr)),
                "f1_macro": f1_macro(pp * n_roll + pr, tp * n_roll + tr, len(meta["pitches"]) * n_roll),
                "n": int(len(tp))}


class OTMRDepthTask(OTMRTask):
    name = "otmr-depth"

    def loss(self, out, target, cfg):
        return F.smooth_l1_loss(out, target["depth"].to(out.dtype), beta=0.5)

    @torch.no_grad()
    def evaluate(self, model, loader, device, meta):
        model.eval()
        pred, true = [], []
        for x, t in loader:
            pred.append(model(x.to(device)).float().cpu())
            true.append(t["depth"])
        pred, true = torch.cat(pred).numpy(), torch.cat(true).numpy()
        mse = float(np.mean((pred - true) ** 2))
        r2 = 1.0 - mse / float(np.var(true))
        return {"score": r2, "r2": r2, "mse": mse, "rmse": mse**0.5,
                "rmse_raw": mse**0.5 * meta["depth_std"], "n": int(len(true))}


TASKS: dict[str, Task] = {t.name: t for t in (DepthTask(), SegTask(), OTMRPoseTask(), OTMRDepthTask())}
