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
    input_pixel_um: float = Field(0.5, gt=0.05, le=5.0, description="seg: the network's nominal working pixel size"
                                   " (stored with the weights; the runtime resamples frames to it)")
    um_per_px_range: tuple[float, float] = Field((0.28, 0.7), description="seg: pixel sizes the network is trained"
                                                 " over (real frames are resampled to sizes drawn from it)")
    real_video: Path | None = Field(None, description="seg: labelled real video (COCO-video folder); skipped with a"
                                    " note when absent, so the model trains on the twin alone")
    real_um_per_px: float = Field(0.4, gt=0, description="seg: the real video's pixel size")
    real_val_from_frame: int = Field(116, ge=0, description="seg: real frames from this index on are validation only")
    real_fraction: float = Field(0.35, ge=0, lt=1, description="seg: share of real crops among training samples")
    scale_jitter: tuple[float, float] = Field((1.0, 1.0), description="depth: training crops are magnified by a factor"
                                              " drawn from this range, so the net cannot read depth from a head's"
                                              " absolute size (heads differ in size, rigs in magnification)")
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
