"""Assemble a rig (devices, clock, digital twin) from a validated :class:`RigConfig`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.config import DEVICE_KINDS, RigConfig
from app.registry import driver_class
from drivers.acquisition import FrameSource
from drivers.clock import Clock, LockstepClock, RealClock
from drivers.context import DeviceContext
from drivers.errors import ConfigError
from drivers.interfaces import Camera, FocusDrive, Manipulator, Pump, XYStage

log = logging.getLogger(__name__)


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

    def __post_init__(self) -> None:
        pixel = self.config.objective.pixel_size_um(self.camera.sensor_pixel_um)
        self.frames = FrameSource(self.camera, self.stage, self.focus, pixel)

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
