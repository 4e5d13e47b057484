"""Install a trained checkpoint as shipped weights (state dict + metadata, no optimizer) with a model card."""

from __future__ import annotations

import json
from pathlib import Path

import torch

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def install_weights(checkpoint: Path, name: str, command: str, data_note: str) -> Path:
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    out = WEIGHTS_DIR / f"{name}.pt"
    payload = {k: ckpt[k] for k in ("task", "model_config", "state_dict", "meta", "metrics", "epoch", "train_config")}
    # fp16 storage halves the repository's size; load_weights restores float32
    payload["state_dict"] = {k: (v.half() if v.is_floating_point() else v).clone() for k, v in payload["state_dict"].items()}
    torch.save(payload, out)
    metrics = {k: v for k, v in ckpt["metrics"].items() if not isinstance(v, list)}
    card = [f"# {name}", "", f"- task: `{ckpt['task']}`", f"- model: `{json.dumps(ckpt['model_config'])}`",
            f"- data: {data_note}", f"- command: `{command}`", f"- best epoch: {ckpt['epoch'] + 1}",
            f"- size: {out.stat().st_size / 1e6:.2f} MB", "", "Validation metrics at the best epoch:", "",
            "| metric | value |", "|---|---|"]
    card += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    (WEIGHTS_DIR / f"{name}.md").write_text("\n".join(card) + "\n")
    return out


def load_weights(name_or_path: str | Path) -> dict:
    """A shipped weights file by name (``depth_classifier``) or any checkpoint path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = WEIGHTS_DIR / f"{name_or_path}.pt"
    if not path.is_file():
        from drivers.errors import ConfigError

        raise ConfigError(f"weights {path} not found (run `make weights`)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["state_dict"] = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    return ckpt
