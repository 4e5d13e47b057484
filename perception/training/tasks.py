"""What differs between tasks: data, loss, validation metrics (``score``: higher is better), metadata
stored with the weights (class vocabularies, depth standardisation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from perception.data.otmr import load_otmr, pose_vocab, stratified_split
from perception.models.fgaf import WLoss
from perception.training.config import TrainConfig
from perception.training.datasets import DepthCrops, OTMRImages, SegTiles
from sim.datasets import DEPTHS_UM, SEG_CLASSES


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


class DepthTask(Task):
    name = "depth"

    def data(self, cfg: TrainConfig) -> TaskData:
        mk = lambda split, aug: DepthCrops(cfg.data, split, aug, cfg.seed, cfg.max_train_samples if aug else None)  # noqa: E731
        return TaskData(mk("train", True), mk("val", False), mk("test", False),
                        {"depths_um": list(DEPTHS_UM), "image_px": cfg.image_px})

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
    name = "seg"
    class_weights = torch.tensor([0.5, 4.0, 2.0, 1.0])

    def data(self, cfg: TrainConfig) -> TaskData:
        mk = lambda split, aug: SegTiles(cfg.data, split, aug, cfg.seed, cfg.max_train_samples if aug else None,  # noqa: E731
                                         cfg.input_scale)
        return TaskData(mk("train", True), mk("val", False), mk("test", False),
                        {"classes": SEG_CLASSES, "input_scale": cfg.input_scale})

    def loss(self, out, target, cfg):
        ce = F.cross_entropy(out, target, weight=self.class_weights.to(out.device))
        prob = out.softmax(1)
        onehot = F.one_hot(target, out.shape[1]).permute(0, 3, 1, 2).float()
        inter = (prob * onehot).sum((0, 2, 3))
        dice = 1 - (2 * inter + 1) / (prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
        return ce + dice[1:].mean()

    @torch.no_grad()
    def evaluate(self, model, loader, device, meta):
        model.eval()
        n_cls = len(SEG_CLASSES)
        inter, union, psum, tsum = (np.zeros(n_cls) for _ in range(4))
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu().numpy()
            y = y.numpy()
            for c in range(n_cls):
                p, t = pred == c, y == c
                inter[c] += np.sum(p & t)
                union[c] += np.sum(p | t)
                psum[c] += p.sum()
                tsum[c] += t.sum()
        iou = inter / np.maximum(union, 1)
        dice = 2 * inter / np.maximum(psum + tsum, 1)
        names = list(SEG_CLASSES)
        out = {f"iou_{names[c]}": float(iou[c]) for c in range(1, n_cls)}
        out.update({f"dice_{names[c]}": float(dice[c]) for c in range(1, n_cls)})
        out["miou"] = float(iou[1:].mean())
        out["score"] = out["miou"]
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
