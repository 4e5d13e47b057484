"""Weight files: found by shipped name or path, read without running anything they contain, checked before
use.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers: a file crafted to run code
when unpickled is refused, not run. Numpy scalars (older checkpoints keep class depths as numpy floats) are
allowed as numbers of a numeric dtype, nothing else. A loaded file must then have the expected parts,
finite tensors only (a NaN-filled network evaluates silently otherwise), the task and model its model
card names, and tensors that fit the model it names. Every problem is a :class:`WeightsError` of one line.
"""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from drivers.errors import ConfigError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_PARTS = ("task", "model_config", "state_dict", "meta")


class WeightsError(ConfigError):
    """A weights file is missing, unreadable, unsafe, or does not match what it claims to be."""


def weights_path(name_or_path: str | Path) -> Path:
    """A shipped model's name (``depth_classifier``) or a file path."""
    path = Path(name_or_path)
    return WEIGHTS_DIR / f"{name_or_path}.pt" if not path.suffix and len(path.parts) == 1 else path


def _safe_globals() -> list[Any]:
    dtypes = [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_)]
    return [np._core.multiarray.scalar, np.dtype, *dtypes]


def read_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    """``torch.load`` with ``weights_only=True``; any failure is a WeightsError naming the file."""
    import torch
    from torch.serialization import safe_globals

    if not path.is_file():
        raise WeightsError(f"weights {path} not found" + (" (run `make weights`)" if path.parent == WEIGHTS_DIR else ""))
    if path.stat().st_size == 0:
        raise WeightsError(f"weights {path}: empty file")
    try:
        with safe_globals(_safe_globals()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (it asks for {found.group(1)})" if found else ""
        raise WeightsError(f"weights {path}: refused, the file holds more than tensors and numbers{what}; only load "
                           "weights you trust, re-saved as a state dict") from None
    except Exception as exc:  # torch's readers fail in many ways on a file that is not theirs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"weights {path}: not a readable torch file, truncated or damaged ({first[:120]})") from None
    if not isinstance(ckpt, dict):
        raise WeightsError(f"weights {path}: holds a {type(ckpt).__name__}, not a checkpoint mapping")
    return ckpt


def load_weights(name_or_path: str | Path, task: str | None = None) -> dict:
    """A shipped or given checkpoint, checked, with float tensors as float32 (shipped ones are stored fp16)."""
    import torch

    path = weights_path(name_or_path)
    ckpt = read_checkpoint(path)
    missing = [k for k in _PARTS if k not in ckpt]
    if missing:
        raise WeightsError(f"weights {path}: not a micromanip checkpoint (no {', '.join(missing)})")
    if not isinstance(ckpt["state_dict"], dict) or not ckpt["state_dict"] or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ckpt["state_dict"].items()):
        raise WeightsError(f"weights {path}: state_dict is not a mapping of names to tensors")
    if not isinstance(ckpt["model_config"], dict) or not isinstance(ckpt["meta"], dict):
        raise WeightsError(f"weights {path}: model_config and meta must be mappings")
    if task is not None and ckpt["task"] != task:
        raise WeightsError(f"weights {path}: trained for {ckpt['task']!r}, not {task!r}")
    for name, tensor in ckpt["state_dict"].items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(f"weights {path}: tensor {name} has {bad} non-finite values (NaN or inf)")
    for key, value in _numbers(ckpt["meta"]):
        if not math.isfinite(value):
            raise WeightsError(f"weights {path}: meta {key} is not finite ({value})")
    _check_card(path, ckpt)
    ckpt["state_dict"] = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    ckpt["meta"] = plain(ckpt["meta"])
    return ckpt


def build_checked_model(ckpt: dict, source: str | Path = "") -> Any:
    """The model the checkpoint names, with its tensors loaded (a mismatch is a WeightsError)."""
    from perception.models import build_model

    try:
        model = build_model(ckpt["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"weights {source}: model_config {json.dumps(ckpt['model_config'])[:120]} names no model "
                           f"this version builds ({exc})") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise WeightsError(f"weights {source}: tensors do not fit the model they name ({detail})") from None
    return model


def _check_card(path: Path, ckpt: dict) -> None:
    """The model card beside the weights (always there for shipped ones) must name the same task and model."""
    card = path.with_suffix(".md")
    if not card.is_file():
        if path.parent == WEIGHTS_DIR:
            raise WeightsError(f"weights {path}: shipped without its model card {card.name}")
        return
    text = card.read_text(errors="replace")
    task = re.search(r"^- task: `([^`]*)`", text, re.M)
    model = re.search(r"^- model: `([^`]*)`", text, re.M)
    if task and task.group(1) != ckpt["task"]:
        raise WeightsError(f"weights {path}: task {ckpt['task']!r} but its card {card.name} says {task.group(1)!r}")
    if model:
        try:
            named = json.loads(model.group(1))
        except json.JSONDecodeError:
            raise WeightsError(f"weights {path}: its card {card.name} names an unreadable model") from None
        if named != plain(ckpt["model_config"]):
            raise WeightsError(f"weights {path}: model {json.dumps(ckpt['model_config'])} but its card {card.name} says "
                               f"{model.group(1)}")


def _numbers(tree: Any, at: str = "") -> list[tuple[str, float]]:
    if isinstance(tree, dict):
        return [item for k, v in tree.items() for item in _numbers(v, f"{at}.{k}" if at else str(k))]
    if isinstance(tree, (list, tuple)):
        return [item for i, v in enumerate(tree) for item in _numbers(v, f"{at}[{i}]")]
    if isinstance(tree, (float, np.floating)):
        return [(at, float(tree))]
    return []


def plain(tree: Any) -> Any:
    """Numpy scalars and arrays as Python numbers and lists (what a checkpoint's metadata should hold)."""
    if isinstance(tree, dict):
        return {k: plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(plain(v) for v in tree)
    if isinstance(tree, np.ndarray):
        return tree.tolist()
    if isinstance(tree, np.generic):
        return tree.item()
    return tree
