"""Training configuration: one YAML per model (``configs/train/*.yaml``); configs, not flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import ConfigError

Task = Literal["seg", "depth", "otmr-pose", "otmr-depth"]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    task: Task
    data: Path = Field(description="dataset folder (manifest.csv for sim sets, P*_R* folders for OTMR)")
    model: dict[str, Any] = Field(description="registry name and parameters, e.g. {name: unext}")
    out: Path = Field(Path("runs/default"), description="checkpoints and logs")
    image_px: int = Field(96, ge=16, le=1024)
    input_scale: float = Field(1.0, gt=0.05, le=1.0, description="seg: resize tiles by this (runtime uses the same)")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(1, ge=0)
    patience: int = Field(8, ge=1, description="early stopping: epochs without a better validation score")
    seed: int = 0
    workers: int = Field(0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    loss: Literal["ce", "wloss"] = "ce"
    max_train_samples: int | None = Field(None, ge=1)
    split_seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


def load_train_config(path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read training config ({exc.strerror})") from None
    try:
        return TrainConfig.model_validate({**(data or {}), **(overrides or {})})
    except ValidationError as exc:
        from drivers.errors import format_validation_error

        raise ConfigError(format_validation_error(exc, Path(path))) from None
