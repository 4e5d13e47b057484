"""The twin's knobs for robustness sweeps: neutral by default, and doing what they say when set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from app.config import parse_rig_config
from app.rig import build_rig
from sim.camera_model import background
from sim.config import Motility, SceneConfig
from sim.scene import Scene

ROOT = Path(__file__).resolve().parents[2]


def rig_with(**sections):
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    for section, changes in sections.items():
        data[section] = {**data.get(section, {}), **changes}
    return build_rig(parse_rig_config(data), seed=3)


def test_swim_speed_scale_multiplies_every_class_path_speed():
    base, fast = SceneConfig(), SceneConfig(swim_speed_scale=1.5)
    for m in Motility:
        lo, hi = base.kinematics_of(m).path_speed_um_s
        assert fast.kinematics_of(m).path_speed_um_s == pytest.approx((1.5 * lo, 1.5 * hi))
        assert fast.kinematics_of(m).beat_hz == base.kinematics_of(m).beat_hz
    speeds = [c.path_speed_um_s for c in Scene(SceneConfig(n_sperm=40), 1).sperm]
    faster = [c.path_speed_um_s for c in Scene(SceneConfig(n_sperm=40, swim_speed_scale=1.5), 1).sperm]
    assert np.allclose(faster, 1.5 * np.array(speeds))  # the same cells, 1.5x as fast


def test_focus_drift_moves_the_focal_plane_not_the_drive_reading():
    with rig_with(focus={"drift_um_s": 0.2}) as rig:
        z0, true0 = rig.focus.z_um(), rig.world.focus_z_um()
        rig.clock.sleep(5.0)
        assert rig.focus.z_um() == pytest.approx(z0)
        assert rig.world.focus_z_um() - true0 == pytest.approx(1.0, abs=1e-6)
        assert rig.frames.snap().truth.sperm[0].depth_um is not None
    with rig_with() as rig:
        z = rig.world.focus_z_um()
        rig.clock.sleep(5.0)
        assert rig.world.focus_z_um() == pytest.approx(z)  # no drift by default


def test_illumination_tilt_is_a_linear_gradient_across_the_sensor():
    flat = background((1200, 1920), (0, 0, 1920, 1200), 0.0, tilt=0.0)
    tilted = background((1200, 1920), (0, 0, 1920, 1200), 0.0, tilt=0.3)
    assert np.allclose(flat, 1.0)
    row = tilted[600]
    assert row[-1] > 1.0 > row[0] and np.allclose(np.diff(row), np.diff(row)[0], atol=1e-6)
    assert row[-1] - row[0] == pytest.approx(0.3 * 1920 / (0.5 * np.hypot(1920, 1200)), rel=1e-3)


def test_the_camera_renders_with_the_tilt_it_is_given():
    with rig_with(camera={"sensor": {"illumination_tilt": 0.4, "read_noise_e": 0.0}}) as rig:
        img = rig.frames.snap().pixels.astype(float)
    left, right = img[:, :200].mean(), img[:, -200:].mean()
    assert right > 1.2 * left
