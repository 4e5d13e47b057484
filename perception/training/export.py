"""Install a trained checkpoint as shipped weights (state dict + metadata, no optimizer) with a model card."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from perception.checkpoints import WEIGHTS_DIR, WeightsError, load_weights, plain

__all__ = ["install_weights", "load_weights", "WEIGHTS_DIR"]


def install_weights(checkpoint: Path, name: str, command: str, data_note: str) -> Path:
    """Read ``checkpoint`` safely (``weights_only``), check it, and ship it under ``name``."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise WeightsError(f"--name {name!r}: use letters, digits, '_' or '-' (it becomes perception/weights/NAME.pt)")
    ckpt = load_weights(checkpoint)
    missing = [k for k in ("metrics", "epoch", "train_config") if k not in ckpt]
    if missing:
        raise WeightsError(f"weights {checkpoint}: not a training run's checkpoint (no {', '.join(missing)})")
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    out = WEIGHTS_DIR / f"{name}.pt"
    payload = {k: plain(ckpt[k]) for k in ("task", "model_config", "meta", "metrics", "epoch", "train_config")}
    # fp16 storage halves the repository's size; load_weights restores float32
    payload["state_dict"] = {k: (v.half() if v.is_floating_point() else v).clone() for k, v in ckpt["state_dict"].items()}
    torch.save(payload, out)
    metrics = {k: v for k, v in payload["metrics"].items() if not isinstance(v, list)}
    card = [f"# {name}", "", f"- task: `{payload['task']}`", f"- model: `{json.dumps(payload['model_config'])}`",
            f"- data: {data_note}", f"- metadata the runtime reads: `{json.dumps(payload['meta'])}`",
            f"- command: `{command}`", f"- best epoch: {payload['epoch'] + 1}",
            f"- size: {out.stat().st_size / 1e6:.2f} MB", "", "Validation metrics at the best epoch:", "",
            "| metric | value |", "|---|---|"]
    card += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    (WEIGHTS_DIR / f"{name}.md").write_text("\n".join(card) + "\n")
    return out

