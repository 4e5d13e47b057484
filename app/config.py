"""Rig configuration: one YAML file names each device's driver and its parameters.

Loading validates everything up front and turns any problem into a :class:`ConfigError` of one line
that names the file and the field, e.g. ``configs/x.yaml: stage.max_speed_um_s: wrong unit 'ms' ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.registry import DRIVERS, driver_class
from drivers.errors import ConfigError, format_validation_error
from drivers.objective import Objective

DEVICE_KINDS = tuple(DRIVERS)


class DeviceSpec(BaseModel):
    """A device entry before its driver's own settings are checked."""

    model_config = ConfigDict(extra="allow")
    driver: str
    twin: bool | dict[str, Any] = Field(
        False, description="rehearsal: the real driver talks to a protocol server that moves the digital twin's "
                           "device; a mapping gives that twin device's settings (sim/rehearsal.py)")

    @property
    def twin_settings(self) -> dict[str, Any] | None:
        """The twin device's settings when this entry is rehearsed, else None."""
        if self.twin is False:
            return None
        return {} if self.twin is True else dict(self.twin)


class RigConfig(BaseModel):
    """A whole rig. ``devices`` maps kind -> (driver name, validated driver settings)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str
    clock: Literal["real", "lockstep"] = "real"
    seed: int = 0
    objective: Objective = Field(default_factory=Objective)
    camera: DeviceSpec
    stage: DeviceSpec
    focus: DeviceSpec
    manipulator: DeviceSpec
    pump: DeviceSpec
    scene: dict[str, Any] = Field(default_factory=dict, description="digital-twin scene (sim devices only)")
    control: dict[str, Any] = Field(default_factory=dict, description="controller parameters")
    source: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _replay_needs_only_a_camera(cls, data: Any) -> Any:
        """A rig replaying a recording may name only its camera: the devices it leaves out are absent
        (``driver: none``). Any other rig names every device, so a forgotten pump is an error. A relative
        recording path is taken from the rig file's folder."""
        if isinstance(data, dict) and isinstance(data.get("camera"), dict) and data["camera"].get("driver") == "replay":
            data = {**data, **{k: {"driver": "none"} for k in ("stage", "focus", "manipulator", "pump") if k not in data}}
            path, source = data["camera"].get("path"), data.get("source")
            if isinstance(path, str) and source is not None and not Path(path).expanduser().is_absolute():
                # a recording named relative to its rig file, as the file's author sees it
                data["camera"] = {**data["camera"], "path": str(Path(source).parent / path)}
        return data

    @property
    def uses_simulator(self) -> bool:
        return any(getattr(self, kind).driver == "sim" for kind in DEVICE_KINDS) or self.rehearsal

    @property
    def perception_only(self) -> bool:
        """True when the rig cannot run a closed-loop trial: its camera replays a recording (which cannot
        follow a move), or a motion device or the pump is absent."""
        return self.camera.driver == "replay" or any(
            getattr(self, kind).driver == "none" for kind in ("stage", "focus", "manipulator", "pump"))

    @property
    def rehearsal(self) -> bool:
        """True when some real driver talks to the digital twin through its protocol server."""
        return any(getattr(self, kind).twin_settings is not None for kind in DEVICE_KINDS)

    def device_settings(self, kind: str) -> BaseModel:
        """The validated settings model of the device ``kind``."""
        spec: DeviceSpec = getattr(self, kind)
        cls = driver_class(kind, spec.driver)
        params = {k: v for k, v in (spec.model_extra or {}).items()}
        if spec.twin_settings is not None:
            params.update(self._twin_connection(kind, spec, params))
        try:
            return cls.Settings.model_validate(params)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, self.source, prefix=kind)) from None

    def _twin_connection(self, kind: str, spec: DeviceSpec, params: dict[str, Any]) -> dict[str, Any]:
        """Placeholders for the settings the twin's protocol server fills in when the rig is built."""
        from sim.rehearsal import connection_placeholder

        if spec.driver == "sim":
            raise ConfigError(f"{kind}.twin: a sim device is the twin already; twin applies to real drivers")
        if self.clock != "real":
            raise ConfigError(f"{kind}.twin: rehearsal talks to protocol servers in wall time; set clock: real")
        placeholder = connection_placeholder(kind, spec.driver)
        for key in placeholder:
            if key in params:
                raise ConfigError(f"{kind}.{key}: set by the twin's protocol server in rehearsal; remove it")
        return placeholder


def parse_rig_config(data: Any, source: Path | None = None, check_devices: bool = True) -> RigConfig:
    """Validate a rig given as a mapping; every device's own settings are checked too (unless
    ``check_devices`` is False: structure and driver names only, for rigs whose drivers are not here)."""
    where = f"{source}: " if source else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}<top>: a rig file must be a mapping of fields, got {type(data).__name__}")
    try:
        config = RigConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    for kind in DEVICE_KINDS:
        driver = getattr(config, kind).driver
        if not check_devices:
            if driver not in DRIVERS[kind]:
                raise ConfigError(f"{where}{kind}.driver: unknown driver {driver!r} (known: {', '.join(sorted(DRIVERS[kind]))})")
            continue
        try:
            config.device_settings(kind)
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith(where) else where + text) from None
    return config


def load_rig_config(path: str | Path) -> RigConfig:
    """Read and validate a rig YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read rig file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    return parse_rig_config(data, source=path)
