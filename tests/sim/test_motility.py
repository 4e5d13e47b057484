"""Generated tracks fall in their WHO 2021 class's speed range."""

import numpy as np
import pytest

from sim.config import Motility, SceneConfig
from sim.scene import Scene
from sim.sperm import sample_sperm


def kinematics(motility: Motility, seed: int, seconds: float = 2.0, fps: float = 40.0) -> tuple[float, float, float]:
    cfg = SceneConfig(n_sperm=0, n_debris=0)
    rng = np.random.default_rng(seed)
    scene = Scene(cfg, seed)
    scene.sperm = [sample_sperm(0, motility, cfg.kinematics[motility], cfg, rng)]
    steps_per_frame = int(round(1 / fps / cfg.step_s))
    track = []
    for _ in range(int(seconds * fps)):
        track.append(scene.sperm[0].head_center_um()[:2].copy())
        for _ in range(steps_per_frame):
            scene.step(cfg.step_s, None, 0.0)
    track = np.asarray(track)
    t = (len(track) - 1) / fps
    vcl = np.linalg.norm(np.diff(track, axis=0), axis=1).sum() / t
    vsl = np.linalg.norm(track[-1] - track[0]) / t
    avg = np.stack([np.convolve(track[:, i], np.ones(5) / 5, mode="valid") for i in range(2)], axis=1)
    vap = np.linalg.norm(np.diff(avg, axis=0), axis=1).sum() / ((len(avg) - 1) / fps)
    return vcl, vsl, vap


@pytest.mark.parametrize(
    "motility, vsl_range",
    [
        (Motility.RAPID, (25.0, 200.0)),
        (Motility.SLOW, (5.0, 25.0)),
        (Motility.NON_PROGRESSIVE, (0.0, 5.0)),
        (Motility.IMMOTILE, (0.0, 1.0)),
    ],
)
def test_track_speeds_within_class_range(motility, vsl_range):
    lo, hi = vsl_range
    for seed in range(12):
        vcl, vsl, vap = kinematics(motility, seed)
        assert lo <= vsl < hi, (motility, seed, vsl)
        assert vcl >= vap - 1e-6 and vap >= vsl - 1.0
        if motility == Motility.RAPID:
            assert vcl > 1.2 * vsl  # lateral head displacement makes the curvilinear speed higher
        if motility == Motility.IMMOTILE:
            assert vcl < 3.0


def test_unknown_motility_class_is_a_clear_error():
    with pytest.raises(ValueError, match="motility_mix"):
        SceneConfig(motility_mix={"fast": 1.0})
