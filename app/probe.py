"""``micromanip rig probe``: open each device of a rig on its own, report what it says about itself, close it.

Nothing moves: the camera takes one image, the others are only read (a close stops a device, which is
harmless when nothing runs). A device that cannot be opened is reported with the driver's reason and the
others are still probed. Simulated and rehearsed rigs share one digital twin, so they are opened together.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from app.config import DEVICE_KINDS, RigConfig
from app.registry import driver_class
from calibration.store import PARTS, CalibrationStore, default_store_path, objective_key
from drivers.clock import RealClock
from drivers.context import DeviceContext
from drivers.errors import MicromanipError


def describe(kind: str, device: Any) -> str:
    """What the device reports: position, limits, speed caps; the camera's sensor and one image."""
    if kind == "camera":
        h, w = device.sensor_shape
        t0 = time.perf_counter()
        image = device.snap()
        snap_ms = (time.perf_counter() - t0) * 1e3
        px = image.pixels
        full = (1 << device.bit_depth) - 1
        return (f"sensor {w}x{h} px of {device.sensor_pixel_um:g} um, {device.bit_depth} bit, exposure "
                f"{device.exposure_ms:g} ms, {device.frame_rate_hz:g} fps; one image {px.shape[1]}x{px.shape[0]} in "
                f"{snap_ms:.0f} ms, grey {int(px.min())}..{int(px.max())} (mean {float(px.mean()):.0f}), "
                f"{100 * float(np.mean(px >= full)):.1f}% saturated")
    if kind == "stage":
        x, y = device.position_um()
        return (f"at ({x:.1f}, {y:.1f}) um, travel x [{device.x_limits.min_um:g}, {device.x_limits.max_um:g}] y "
                f"[{device.y_limits.min_um:g}, {device.y_limits.max_um:g}] um, max {device.max_speed_um_s:g} um/s")
    if kind == "focus":
        return (f"at z={device.z_um():.2f} um, travel [{device.limits.min_um:g}, {device.limits.max_um:g}] um, "
                f"max {device.max_speed_um_s:g} um/s")
    if kind == "manipulator":
        p = device.position_um()
        travel = ", ".join(f"[{lim.min_um:g}, {lim.max_um:g}]" for lim in device.limits)
        return f"at ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) um, travel {travel} um, max {device.max_speed_um_s:g} um/s"
    return (f"rate {device.rate_nl_s():g} nL/s, {device.volume_nl():g} nL moved since opened, max "
            f"{device.max_rate_nl_s:g} nL/s")


def probe_rig(config: RigConfig) -> tuple[list[str], bool]:
    """Lines to print, and whether every device opened and answered."""
    lines = [f"{config.source or config.name}: rig '{config.name}'"]
    ok = True
    if config.uses_simulator:
        from app.rig import build_rig

        try:
            with build_rig(config) as rig:
                for kind in DEVICE_KINDS:
                    lines.append(_line(kind, getattr(config, kind).driver, getattr(rig, kind)))
                lines.append(f"  calibration  {rig.store.path} [{rig.objective_key}]: {rig.calibration.summary()}")
                return lines, all(" FAILED" not in line for line in lines)
        except MicromanipError as exc:
            lines.append(f"  rig          FAILED: {exc}")
            ok = False
    else:
        context = DeviceContext(clock=RealClock(), objective=config.objective, world=None)
        for kind in DEVICE_KINDS:
            driver = getattr(config, kind).driver
            try:
                device = driver_class(kind, driver).from_settings(kind, config.device_settings(kind), context)
            except (MicromanipError, OSError) as exc:
                lines.append(f"  {kind:12s} {driver:14s} FAILED to open: {exc}")
                ok = False
                continue
            try:
                lines.append(_line(kind, driver, device))
            finally:
                try:
                    device.close()
                except MicromanipError as exc:
                    lines.append(f"  {kind:12s} {driver:14s} close failed: {exc}")
    ok = ok and all(" FAILED" not in line for line in lines)
    store = config.control.calibration.store or default_store_path(config.name)
    key = objective_key(config.objective)
    try:
        stored = CalibrationStore(store).load(key)
        parts = ", ".join(f"{p} {'calibrated ' + getattr(stored, p).time if getattr(stored, p) else 'NOT CALIBRATED'}"
                          for p in PARTS)
    except MicromanipError as exc:
        parts = f"store unreadable: {exc}"
    lines.append(f"  calibration  {store} [{key}]: {parts}")
    return lines, ok


def _line(kind: str, driver: str, device: Any) -> str:
    try:
        return f"  {kind:12s} {driver:14s} OK: {describe(kind, device)}"
    except MicromanipError as exc:
        return f"  {kind:12s} {driver:14s} FAILED to answer: {exc}"
