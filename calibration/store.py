"""The calibration store: one JSON file per rig with the current calibration of each objective (camera <->
stage, manipulator -> lab, dish floor), each part dated, and every calibration it replaced.

Where it lives: the rig file's ``control.calibration.store``, else ``<user data dir>/calibration/<rig>.json``
(``MICROMANIP_DATA_DIR`` replaces the user data dir: tests and rehearsals keep their own). Writes go to a
temporary file renamed into place, so a crash never leaves half a store.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calibration.transforms import CameraStageTransform, ManipulatorTransform
from drivers.errors import ConfigError
from drivers.objective import Objective

Part = Literal["camera", "manipulator", "floor"]
PARTS: tuple[Part, ...] = ("camera", "manipulator", "floor")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    time: str = Field(default_factory=now_iso)
    residuals_um: tuple[float, ...] = ()
    note: str = ""


class CameraCalibration(_Entry):
    pixel_size_um: float = Field(gt=0)
    rotation_deg: float = Field(ge=-180, le=180)
    flip_x: bool = False

    def transform(self, sensor_shape: tuple[int, int]) -> CameraStageTransform:
        return CameraStageTransform(self.pixel_size_um, sensor_shape[1], sensor_shape[0], self.rotation_deg,
                                    self.flip_x)


class ManipulatorCalibration(_Entry):
    matrix: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
    offset_um: tuple[float, float, float]

    def transform(self) -> ManipulatorTransform:
        return ManipulatorTransform(np.array(self.matrix, float), np.array(self.offset_um, float))


class FloorCalibration(_Entry):
    z_um: float


class ObjectiveCalibration(BaseModel):
    """What is known for one objective; a part never calibrated is None."""

    model_config = ConfigDict(extra="forbid")
    camera: CameraCalibration | None = None
    manipulator: ManipulatorCalibration | None = None
    floor: FloorCalibration | None = None


class _HistoryItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: str
    part: Part
    replaced: CameraCalibration | ManipulatorCalibration | FloorCalibration
    replaced_at: str


class _StoreFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rig: str = ""
    current: dict[str, ObjectiveCalibration] = Field(default_factory=dict)
    history: list[_HistoryItem] = Field(default_factory=list)


def objective_key(objective: Objective) -> str:
    """``40x NA0.65``: calibrations belong to an objective (pixel size, focus offsets differ)."""
    return f"{objective.magnification:g}x NA{objective.na:g}"


def data_dir() -> Path:
    """micromanip's per-user data folder (``MICROMANIP_DATA_DIR`` overrides it)."""
    override = os.environ.get("MICROMANIP_DATA_DIR")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("micromanip", appauthor=False))


def default_store_path(rig_name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", rig_name).strip("-") or "rig"
    return data_dir() / "calibration" / f"{slug}.json"


class CalibrationStore:
    def __init__(self, path: Path, rig_name: str = "") -> None:
        self.path = Path(path)
        self.rig_name = rig_name

    def _read(self) -> _StoreFile:
        if not self.path.exists():
            return _StoreFile(rig=self.rig_name)
        try:
            return _StoreFile.model_validate_json(self.path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the calibration store ({exc.strerror})") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "<top>"
            raise ConfigError(f"{self.path}: not a calibration store ({where}: {err['msg']}); move it away "
                              "and calibrate again") from None

    def load(self, objective: str) -> ObjectiveCalibration:
        """The current calibration of ``objective`` (parts never calibrated are None)."""
        return self._read().current.get(objective, ObjectiveCalibration())

    def history(self, objective: str) -> list[tuple[Part, str, BaseModel]]:
        """(part, when it was replaced, the replaced entry), oldest first."""
        return [(h.part, h.replaced_at, h.replaced) for h in self._read().history if h.objective == objective]

    def save(self, objective: str, part: Part, entry: CameraCalibration | ManipulatorCalibration | FloorCalibration
             ) -> Path:
        """Make ``entry`` the current ``part`` of ``objective``; the one it replaces goes to the history."""
        data = self._read()
        current = data.current.get(objective, ObjectiveCalibration())
        previous = getattr(current, part)
        if previous is not None:
            data.history.append(_HistoryItem(objective=objective, part=part, replaced=previous, replaced_at=now_iso()))
        data.current[objective] = current.model_copy(update={part: entry})
        data.rig = data.rig or self.rig_name
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data.model_dump(mode="json"), indent=1))
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write the calibration store ({exc.strerror})") from None
        return self.path
