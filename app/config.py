"""Rig configuration: one YAML file names each device's driver and its parameters, and the controller's.

Loading validates everything up front and turns any problem into a :class:`ConfigError` of one line
that names the file and the field, e.g. ``configs/x.yaml: stage.max_speed_um_s: wrong unit 'ms' ...``.
What is refused besides a field's own rules: a file that is not UTF-8 text (binary, UTF-16), a key given
twice in one mapping (YAML would silently keep the last), a value that is not finite anywhere in the file,
and a weights file or shipped model name that does not exist.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.control_config import ControlConfig
from app.registry import DRIVERS, driver_class
from drivers.errors import ConfigError, format_validation_error
from drivers.objective import Objective

DEVICE_KINDS = tuple(DRIVERS)
MAX_RIG_FILE_BYTES = 1_000_000


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

    name: str = Field(min_length=1, max_length=200)
    clock: Literal["real", "lockstep"] = "real"
    seed: int = Field(0, ge=0, le=2**63 - 1)
    objective: Objective = Field(default_factory=Objective)
    camera: DeviceSpec
    stage: DeviceSpec
    focus: DeviceSpec
    manipulator: DeviceSpec
    pump: DeviceSpec
    scene: dict[str, Any] = Field(default_factory=dict, description="digital-twin scene (sim devices only)")
    control: ControlConfig = Field(default_factory=ControlConfig, description="controller parameters")
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
    _refuse_non_finite(data, where)
    try:
        config = RigConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    config = config.model_copy(update={"control": _resolve_paths(config.control, source, where)})
    if config.uses_simulator:
        from sim.config import SceneConfig

        try:
            SceneConfig.model_validate(config.scene)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, prefix="scene")) from None
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


def _refuse_non_finite(data: Any, where: str, path: str = "") -> None:
    """``.inf``/``.nan`` are floats YAML accepts anywhere; no rig setting is infinite or undefined."""
    seen: set[int] = set()
    stack = [(path, data)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, (dict, list)):
            if id(value) in seen:  # YAML aliases share objects: visit each once
                continue
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((f"{at}.{k}" if at else str(k), v) for k, v in items)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}{at or '<top>'}: must be a finite number (got {value})")


def _resolve_paths(control: ControlConfig, source: Path | None, where: str) -> ControlConfig:
    """Weights files and the calibration store given relative to the rig file; a weights name that is
    neither a shipped model nor a file is refused here, not when the first trial starts."""
    from perception.training.export import WEIGHTS_DIR

    base = source.parent if source is not None else Path.cwd()
    weights = {}
    for role, value in control.weights.model_dump().items():
        if looks_like_path(value):
            path = Path(value).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise ConfigError(f"{where}control.weights.{role}: no such weights file {str(path)!r}")
            weights[role] = str(path)
        elif not (WEIGHTS_DIR / f"{value}.pt").is_file():
            shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))
            raise ConfigError(f"{where}control.weights.{role}: {value!r} is neither a file nor a shipped model "
                              f"({', '.join(shipped)})")
        else:
            weights[role] = value
    store = control.calibration.store
    if store is not None and not store.expanduser().is_absolute():
        store = base / store.expanduser()
    return control.model_copy(update={
        "weights": control.weights.model_copy(update=weights),
        "calibration": control.calibration.model_copy(update={"store": store})})


def with_weights(config: RigConfig, seg: str | None, depth: str | None) -> RigConfig:
    """The rig with the weights a command line chose instead of its file's (checked the same way; relative
    paths are relative to the working folder)."""
    if seg is None and depth is None:
        return config
    weights = config.control.weights.model_copy(update={k: v for k, v in (("seg", seg), ("depth", depth)) if v})
    control = _resolve_paths(config.control.model_copy(update={"weights": weights}), None, "")
    return config.model_copy(update={"control": control.model_copy(update={"calibration": config.control.calibration})})


def looks_like_path(name: str) -> bool:
    """A weights value with a suffix or a folder is a file; a bare word is a shipped model's name."""
    return Path(name).suffix != "" or "/" in name or "\\" in name


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        keys: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}",
                                                        key_node.start_mark) from None
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first at line {keys[key] + 1})", key_node.start_mark)
            keys[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_rig_text(path: Path) -> str:
    """The rig file as text; binary files and other encodings are refused in one line."""
    try:
        size = path.stat().st_size
        if size > MAX_RIG_FILE_BYTES:
            raise ConfigError(f"{path}: {size / 1e6:.1f} MB is not a rig file (at most {MAX_RIG_FILE_BYTES // 1000} kB)")
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a rig file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read rig file ({exc.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and (raw[0] == 0) != (raw[1] == 0)):
        raise ConfigError(f"{path}: UTF-16 text; save the rig file as UTF-8")
    if b"\x00" in raw:
        raise ConfigError(f"{path}: binary file, not a YAML rig file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save it as UTF-8") from None


def load_rig_config(path: str | Path) -> RigConfig:
    """Read and validate a rig YAML file."""
    path = Path(path)
    text = read_rig_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{line}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if data is None:
        raise ConfigError(f"{path}: empty rig file")
    return parse_rig_config(data, source=path)
