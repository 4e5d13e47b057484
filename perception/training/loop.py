"""The training loop: seeds, AdamW with warm-up + cosine schedule, best-on-validation checkpoints,
early stopping, resume from ``last.pt``, and DDP when launched by torchrun (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from perception.checkpoints import WeightsError, plain, read_checkpoint
from perception.models import build_model
from perception.training.config import TrainConfig
from perception.training.tasks import TASKS

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _collate_targets(batch):
    return torch.utils.data.default_collate(batch)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank() if world > 1 else 0), world


def _device(cfg: TrainConfig, rank: int) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", rank % max(torch.cuda.device_count(), 1))


def lr_at(epoch_f: float, cfg: TrainConfig) -> float:
    if epoch_f < cfg.warmup_epochs:
        return cfg.lr * (epoch_f + 1e-3) / cfg.warmup_epochs
    progress = (epoch_f - cfg.warmup_epochs) / max(cfg.epochs - cfg.warmup_epochs, 1)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def save_checkpoint(path: Path, model: torch.nn.Module, cfg: TrainConfig, meta: dict, metrics: dict,
                    epoch: int, extra: dict[str, Any] | None = None) -> None:
    module = model.module if hasattr(model, "module") else model
    payload = {"task": cfg.task, "model_config": cfg.model, "state_dict": module.state_dict(), "meta": plain(meta),
               "metrics": plain(metrics), "epoch": epoch, "train_config": json.loads(cfg.model_dump_json())}
    payload.update({k: v if k == "optimizer" else plain(v) for k, v in (extra or {}).items()})
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train ``cfg``; returns the best validation metrics. Writes best.pt, last.pt, history.json."""
    rank, world = _distributed()
    seed_everything(cfg.seed + rank)
    device = _device(cfg, rank)
    task = TASKS[cfg.task]
    data = task.data(cfg)
    model = build_model(cfg.model).to(device)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = DistributedSampler(data.train, shuffle=True, seed=cfg.seed) if world > 1 else None
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                              num_workers=cfg.workers, drop_last=len(data.train) > cfg.batch_size, generator=gen)
    val_loader = DataLoader(data.val, batch_size=cfg.batch_size * 2, num_workers=cfg.workers)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    cfg.out.mkdir(parents=True, exist_ok=True)
    start_epoch, best, best_metrics, history, stale = 0, -math.inf, {}, [], 0
    last = cfg.out / "last.pt"
    if resume and last.is_file():
        ckpt = read_checkpoint(last, map_location=device)  # weights_only: a planted file cannot run code
        missing = [k for k in ("state_dict", "optimizer", "epoch", "best_score", "best_metrics", "history", "stale")
                   if k not in ckpt]
        if missing:
            raise WeightsError(f"{last}: cannot resume from it (no {', '.join(missing)})")
        try:
            (model.module if world > 1 else model).load_state_dict(ckpt["state_dict"])
            opt.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise WeightsError(f"{last}: does not fit this configuration's model ({' '.join(str(exc).split())[:160]})") from None
        start_epoch, best, best_metrics = ckpt["epoch"] + 1, ckpt["best_score"], ckpt["best_metrics"]
        history, stale = ckpt["history"], ckpt["stale"]
        log.info("resumed %s at epoch %d (best %.4f)", cfg.out, start_epoch, best)
    steps = len(train_loader)
    for epoch in range(start_epoch, cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        t0, total, count = time.time(), 0.0, 0
        bar = tqdm(train_loader, desc=f"{cfg.task} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not progress or rank != 0)
        for i, (x, target) in enumerate(bar):
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch + i / steps, cfg)
            x = x.to(device)
            target = {k: v.to(device) for k, v in target.items()} if isinstance(target, dict) else target.to(device)
            loss = task.loss(model(x), target, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += loss.item() * x.shape[0]
            count += x.shape[0]
            bar.set_postfix(loss=f"{total / count:.4f}")
        if rank != 0:
            continue
        eval_model = model.module if world > 1 else model
        metrics = task.evaluate(eval_model, val_loader, device, data.meta)
        row = {"epoch": epoch, "train_loss": total / max(count, 1), "seconds": round(time.time() - t0, 1),
               **{k: v for k, v in metrics.items() if not isinstance(v, list)}}
        history.append(row)
        improved = metrics["score"] > best
        if improved:
            best, best_metrics, stale = metrics["score"], metrics, 0
            save_checkpoint(cfg.out / "best.pt", eval_model, cfg, data.meta, metrics, epoch)
        else:
            stale += 1
        save_checkpoint(last, eval_model, cfg, data.meta, metrics, epoch,
                        {"optimizer": opt.state_dict(), "best_score": best, "best_metrics": best_metrics,
                         "history": history, "stale": stale})
        (cfg.out / "history.json").write_text(json.dumps(history, indent=1))
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {row['train_loss']:.4f} val score {metrics['score']:.4f}"
                       f"{' *' if improved else ''} ({row['seconds']} s)")
        if stale >= cfg.patience:
            tqdm.write(f"early stop: {stale} epochs without improvement")
            break
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return best_metrics
