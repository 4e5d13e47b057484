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


def test_cells_spread_in_z_as_in_a_dish():
    from sim.sperm import Habitat

    mix = {Motility.RAPID: 0.5, Motility.SLOW: 0.2, Motility.IMMOTILE: 0.3}
    cfg = SceneConfig(n_sperm=800, n_debris=0, motility_mix=mix)
    cells = Scene(cfg, 0).sperm
    motile = [c for c in cells if c.motility != Motility.IMMOTILE]
    surface = [c for c in motile if c.habitat == Habitat.SURFACE]
    bulk = [c for c in motile if c.habitat == Habitat.BULK]
    assert abs(len(surface) / len(motile) - cfg.surface_fraction) < 0.06
    z = np.array([c.path_pos_um[2] for c in surface])
    assert 2.4 < np.median(z) < 3.6  # most within a few um of the floor
    assert np.percentile(z, 75) - np.percentile(z, 25) > 1.2  # at heights of their own, not one gap
    assert np.percentile(z, 95) < 10 and z.min() > 0.5
    zb = np.array([c.path_pos_um[2] for c in bulk])
    assert zb.max() > 25 and np.std([c.pitch_rad for c in bulk]) > 0.15  # bulk swimmers cross planes
    helical = [c for c in bulk if c.helix_radius_um > 0]
    assert 0 < len(helical) < 0.15 * len(bulk)
    immotile = [c for c in cells if c.motility == Motility.IMMOTILE]
    settled = [c for c in immotile if c.habitat == Habitat.SETTLED]
    assert abs(len(settled) / len(immotile) - cfg.settled_fraction) < 0.08
    half_t = [0.5 * cfg.morphology.head_thickness_um * c.scale for c in settled]
    assert np.allclose([c.path_pos_um[2] for c in settled], half_t)  # lying flat on the floor
    assert all(abs(np.sin(c.roll_rad)) < 1e-9 for c in settled)  # face-down


def test_habitats_move_as_they_should_over_seconds():
    from sim.sperm import Habitat

    cfg = SceneConfig(n_sperm=0, n_debris=0, translational_diffusion_um2_s=0.0)
    rng = np.random.default_rng(4)
    bound = sample_sperm(0, Motility.RAPID, cfg.kinematics[Motility.RAPID], cfg, rng)
    bound.habitat, bound.height_um, bound.wobble_um, bound.path_pos_um[2] = Habitat.SURFACE, 3.0, 0.5, 3.0
    diving = sample_sperm(1, Motility.RAPID, cfg.kinematics[Motility.RAPID], cfg, rng)
    diving.habitat, diving.helix_radius_um = Habitat.BULK, 0.0
    diving.path_pos_um[2], diving.pitch_rad, diving.height_um = 12.0, -0.4, 4.0
    sinking = sample_sperm(2, Motility.IMMOTILE, cfg.kinematics[Motility.IMMOTILE], cfg, rng)
    sinking.habitat, sinking.path_pos_um[2] = Habitat.SINKING, 20.0
    scene = Scene(cfg.model_copy(update={"surface_escape_per_s": 0.0}), 0)
    scene.sperm = [bound, diving, sinking]
    heights = []
    for _ in range(int(5.0 / cfg.step_s)):
        scene.step(cfg.step_s, None, 0.0)
        heights.append(bound.path_pos_um[2])
    assert max(abs(np.array(heights) - 3.0)) < 0.5 + 0.3  # held at its height, pitching slowly about it
    assert np.ptp(heights) > 0.5
    assert diving.habitat == Habitat.SURFACE and abs(diving.path_pos_um[2] - 4.0) < 1.0  # the floor caught it
    assert sinking.path_pos_um[2] == pytest.approx(20.0 - 5.0 * cfg.sedimentation_um_s, abs=0.05)


def test_a_head_swung_toward_the_floor_slides_along_it_never_into_the_glass():
    """The beat swings a rapid cell's head by up to 3 um across its path, and the beat plane rolls: near the
    floor the glass stops the swing (a bound swimmer's path may lie 1.2 um up)."""
    from sim.sperm import Habitat

    cfg = SceneConfig(n_sperm=0, n_debris=0)
    rng = np.random.default_rng(5)
    z, extent = [], []
    for i in range(6):
        cell = sample_sperm(i, Motility.RAPID, cfg.kinematics[Motility.RAPID], cfg, rng)
        cell.habitat, cell.height_um, cell.wobble_um, cell.path_pos_um[2] = Habitat.SURFACE, 1.2, 0.3, 1.2
        cell.alh_um = 6.0
        for _ in range(int(1.0 / cfg.step_s)):
            cell.step(cfg.step_s, rng, cfg, np.zeros(3))
            z.append(cell.head_center_um()[2])
            extent.append(cell.head_half_extent_um(cfg.morphology, np.array([0.0, 0.0, 1.0])))
    z, extent = np.array(z), np.array(extent)
    assert np.all(z >= extent - 1e-9)  # never into the glass
    assert np.mean(np.isclose(z, extent)) > 0.1  # often in contact: the swing would have taken it lower
    assert np.ptp(z) > 3.0  # and still swung up, away from the floor


def test_a_helical_swimmer_circles_its_path():
    cfg = SceneConfig(n_sperm=0, n_debris=0)
    cell = sample_sperm(0, Motility.RAPID, cfg.kinematics[Motility.RAPID], cfg, np.random.default_rng(2))
    cell.alh_um, cell.helix_radius_um, cell.helix_hz = 0.0, 2.0, 10.0
    offsets = []
    for phase in np.linspace(0, 2 * np.pi, 9):
        cell.helix_phase = phase
        offsets.append(cell.head_center_um() - cell.path_pos_um)
    offsets = np.array(offsets)
    assert np.allclose(np.linalg.norm(offsets, axis=1), 2.0)
    assert np.allclose(offsets @ cell.heading(), 0.0, atol=1e-9)  # about the swimming direction
    assert np.ptp(offsets[:, 2]) > 1.0  # crossing planes
