"""Assemble a rig (devices, clock, digital twin) from a validated :class:`RigConfig`, with its calibration.

The rig loads its calibration from the calibration store when it is built (the digital twin's own
geometry stands in for parts never calibrated on a simulated or rehearsed rig; a real rig has none) and
installs the tip guard on the manipulator: from then on every manipulator move, the operator's, the
controller's or a calibration routine's, is checked against the floor and the workspace in lab
coordinates before it starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.config import DEVICE_KINDS, RigConfig
from app.registry import driver_class
from calibration.store import PARTS, CalibrationStore, Part, default_store_path, objective_key
from calibration.transforms import CameraStageTransform, ManipulatorTransform
from control.safety import SafetyConfig, TipGuard
from drivers.acquisition import FrameSource
from drivers.clock import Clock, LockstepClock, RealClock
from drivers.context import DeviceContext
from drivers.errors import ConfigError, MicromanipError
from drivers.interfaces import Camera, FocusDrive, Manipulator, Pump, XYStage

log = logging.getLogger(__name__)


CALIBRATE_HINT = {"camera": "micromanip calibrate camera", "manipulator": "micromanip calibrate manipulator",
                  "floor": "micromanip calibrate floor"}


@dataclass
class RigCalibration:
    """The transforms and floor in force; ``sources`` says where each part came from (for the operator)."""

    camera_tf: CameraStageTransform | None
    manip_tf: ManipulatorTransform | None
    floor_z_um: float | None
    sources: dict[str, str]

    @property
    def complete(self) -> bool:
        return self.camera_tf is not None and self.manip_tf is not None and self.floor_z_um is not None

    def missing(self) -> list[Part]:
        values = {"camera": self.camera_tf, "manipulator": self.manip_tf, "floor": self.floor_z_um}
        return [part for part in PARTS if values[part] is None]

    def require(self, rig_source: object = None) -> None:
        """Refuse to run the controller on a rig with an uncalibrated part."""
        missing = self.missing()
        if missing:
            rig = f" --rig {rig_source}" if rig_source else ""
            raise MicromanipError(f"not calibrated: {', '.join(missing)}; run "
                                  + ", then ".join(f"`{CALIBRATE_HINT[p]}{rig}`" for p in missing))

    def summary(self) -> str:
        return "; ".join(f"{part}: {self.sources[part]}" for part in PARTS)


@dataclass
class Rig:
    config: RigConfig
    clock: Clock
    camera: Camera
    stage: XYStage
    focus: FocusDrive
    manipulator: Manipulator
    pump: Pump
    world: Any = None  # sim.world.World when any device is simulated
    twins: list[Any] = field(default_factory=list)  # rehearsal: twin devices behind protocol servers
    servers: list[Any] = field(default_factory=list)  # rehearsal: the protocol servers
    frames: FrameSource = field(init=False)
    calibration: RigCalibration = field(init=False)
    safety: SafetyConfig = field(init=False)
    store: CalibrationStore = field(init=False)

    def __post_init__(self) -> None:
        pixel = self.config.objective.pixel_size_um(self.camera.sensor_pixel_um)
        self.frames = FrameSource(self.camera, self.stage, self.focus, pixel)
        cal = self.config.control.calibration
        self.store = CalibrationStore(cal.store or default_store_path(self.config.name), self.config.name)
        self.reload_calibration()

    @property
    def objective_key(self) -> str:
        return objective_key(self.config.objective)

    def reload_calibration(self) -> RigCalibration:
        """Read the store again (after a calibration was saved) and re-arm the tip guard with it."""
        stored = self.store.load(self.objective_key)
        twin = self._twin_geometry()
        sources: dict[str, str] = {}

        def pick(part: str, saved, from_store, nominal):
            if saved is not None:
                sources[part] = f"calibrated {saved.time}"
                return from_store(saved)
            sources[part] = "the twin's geometry (not calibrated)" if twin is not None else "NOT CALIBRATED"
            return nominal

        camera_tf = pick("camera", stored.camera, lambda c: c.transform(self.camera.sensor_shape),
                         twin[0] if twin else None)
        manip_tf = pick("manipulator", stored.manipulator, lambda m: m.transform(), twin[1] if twin else None)
        floor = pick("floor", stored.floor, lambda f: f.z_um, 0.0 if twin else None)
        self.calibration = RigCalibration(camera_tf, manip_tf, floor, sources)
        # the floor limit rises by the fits' worst residual: the guard checks through these same transforms
        error_um = max((max(entry.residuals_um, default=0.0) for entry in (stored.manipulator, stored.floor)
                        if entry is not None), default=0.0)
        self.safety = self.config.control.safety_limits(floor if floor is not None else 0.0, error_um)
        self.manipulator.guard = (TipGuard(self.safety, manip_tf) if manip_tf is not None and floor is not None
                                  else None)
        if self.manipulator.guard is None:
            log.warning("%s: manipulator moves are checked against its own travel only until it is calibrated (%s)",
                        self.config.name, self.calibration.summary())
        return self.calibration

    def _twin_geometry(self) -> tuple[CameraStageTransform, ManipulatorTransform] | None:
        """The twin's exact transforms when the rig is simulated or rehearsed: its camera as rotated on the
        stage axes, its floor at z = 0, its manipulator mounted as its settings say."""
        if self.world is None:
            return None
        sim_camera = next((t for t in self.twins if t.kind == "camera"), self.camera)
        rotation = float(getattr(getattr(sim_camera, "s", None), "rotation_deg", 0.0))
        cam = CameraStageTransform(self.frames.pixel_size_um, self.camera.sensor_shape[1], self.camera.sensor_shape[0],
                                   rotation)
        m = self.world.manipulator
        if m is None:
            return cam, ManipulatorTransform()
        return cam, ManipulatorTransform(*m.mounting())

    def devices(self) -> list[Any]:
        return [self.camera, self.stage, self.focus, self.manipulator, self.pump]

    def stop_all(self) -> None:
        for device in self.devices():
            try:
                device.stop()
            except Exception as exc:
                log.error("%s: stop failed: %s", device.name, exc)

    def close(self) -> None:
        """Drivers first (they stop their devices through the link), then the rehearsal's servers and twins."""
        self.stop_all()
        for thing in [*self.devices(), *self.servers, *self.twins]:
            try:
                thing.close()
            except Exception as exc:
                log.error("%s: close failed: %s", getattr(thing, "name", type(thing).__name__), exc)

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_rig(config: RigConfig, seed: int | None = None, clock: Clock | None = None) -> Rig:
    """Create the clock, the digital twin (if any device is simulated) and every device."""
    clock = clock or (LockstepClock() if config.clock == "lockstep" else RealClock())
    seed = config.seed if seed is None else seed
    world = None
    if config.uses_simulator:
        from sim.config import SceneConfig
        from sim.world import World

        try:
            scene = SceneConfig.model_validate(config.scene)
        except ValidationError as exc:
            from drivers.errors import format_validation_error

            raise ConfigError(format_validation_error(exc, config.source, prefix="scene")) from None
        world = World(scene, config.objective, clock, seed)
    context = DeviceContext(clock=clock, objective=config.objective, world=world)
    devices: dict[str, Any] = {}
    twins: list[Any] = []
    servers: list[Any] = []
    try:
        for kind in DEVICE_KINDS:
            spec = getattr(config, kind)
            cls = driver_class(kind, spec.driver)
            settings = config.device_settings(kind)
            if spec.twin_settings is None:
                devices[kind] = cls.from_settings(kind, settings, context)
                continue
            from sim.rehearsal import connect

            twin = _twin_device(kind, spec.twin_settings, context, config)
            twins.append(twin)
            devices[kind], server = connect(kind, spec.driver, cls, settings, twin, context)
            if server is not None:
                servers.append(server)
    except BaseException:
        for thing in [*devices.values(), *servers, *twins]:
            try:
                thing.close()
            except Exception as exc:
                log.error("closing after a failed build: %s", exc)
        raise
    return Rig(config=config, clock=clock, world=world, twins=twins, servers=servers, **devices)


def _twin_device(kind: str, settings: dict[str, Any], context: DeviceContext, config: RigConfig) -> Any:
    """The simulated device a rehearsed driver's protocol server moves."""
    cls = driver_class(kind, "sim")
    try:
        model = cls.Settings.model_validate(settings)
    except ValidationError as exc:
        from drivers.errors import format_validation_error

        raise ConfigError(format_validation_error(exc, config.source, prefix=f"{kind}.twin")) from None
    return cls.from_settings(f"{kind}-twin", model, context)
