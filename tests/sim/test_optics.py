"""Image formation follows the partially coherent weak-object model."""

import numpy as np
import pytest

from drivers.errors import ConfigError
from drivers.objective import Objective
from sim.config import Morphology, Motility, OpticsConfig, SceneConfig
from sim.head import HeadConfig, HeadShape
from sim.optics import WeakObjectOptics
from sim.scene import Scene
from sim.sperm import sample_sperm
from sim.standalone import CropRenderer

PIXEL_UM = 5.86 / 40


def head_contrast(depth_um: float, microscope: str = "inverted", extinction: float = 0.0) -> float:
    """Mean modulation over the centre of a still, face-on head ``depth_um`` above the focal plane (a pure
    phase object by default: no extinction, no texture, no vacuoles)."""
    head = HeadConfig(extinction_per_um=(extinction, 0.0), texture=(0.0, 0.0), small_vacuoles_per_head=0.0,
                      large_vacuole_share=0.0, shape_mix={HeadShape.NORMAL: 1.0})
    cfg = SceneConfig(n_sperm=0, n_debris=0, morphology=Morphology(head=head), optics=OpticsConfig(microscope=microscope))
    crops = CropRenderer(scene_cfg=cfg)
    rng = np.random.default_rng(3)
    cell = sample_sperm(0, Motility.IMMOTILE, cfg.kinematics[Motility.IMMOTILE], cfg, rng)
    cell.path_pos_um[:] = [0, 0, 10.0]
    cell.roll_rad = 0.0
    scene = Scene(cfg, 0)
    scene.sperm = [cell]
    delta, _ = crops.delta(scene, crops.view((0.0, 0.0), 10.0 - depth_um, 64))
    return float(delta[28:36, 28:36].mean())


def test_phase_object_faint_in_focus_and_inverts_across_focus():
    below, focus, above = head_contrast(-1.0), head_contrast(0.0), head_contrast(+1.0)
    assert abs(focus) < 0.35 * min(abs(below), abs(above))
    assert np.sign(below) == -np.sign(above)
    assert abs(below) > 0.05


@pytest.mark.parametrize("microscope, bright_side", [("inverted", +1.0), ("upright", -1.0)])
def test_the_microscope_sets_which_side_of_focus_a_head_is_bright(microscope, bright_side):
    """+z is up, away from the dish floor. A head focuses light like a weak lens, so its centre is bright
    where the focal plane lies downstream of it along the light: in an inverted microscope (light going
    down, objective below) that is a head ABOVE the focal plane; in an upright one, a head below it."""
    assert head_contrast(bright_side, microscope) > 0.05
    assert head_contrast(-bright_side, microscope) < -0.05


def test_inverted_and_upright_images_mirror_each_other_in_depth():
    """The same head (with extinction, as real heads) at +1.5 um in one geometry looks as it does at
    -1.5 um in the other: only the direction of the light relative to +z differs."""
    for z in (0.5, 1.5):
        assert head_contrast(z, "inverted", 0.15) == pytest.approx(head_contrast(-z, "upright", 0.15), abs=1e-5)
        assert head_contrast(z, "inverted", 0.15) != pytest.approx(head_contrast(z, "upright", 0.15), abs=0.01)


def test_strong_object_imager_matches_a_dense_condenser_sum():
    """The head's image from 32-48 condenser points stays within 12% (L2 of the modulation) of a
    512-point Abbe sum within 4 um of focus."""
    from sim.head import head_transmission, sample_head
    from sim.optics import AbbeImager

    imager = AbbeImager(Objective(), PIXEL_UM, "inverted")
    head = sample_head(HeadConfig(), np.random.default_rng(2), HeadShape.NORMAL)
    n = 128
    o = head_transmission(head, 0.3, 1.0, 0.5, (n / 2, n / 2), (n, n), PIXEL_UM, 2 * np.pi / 0.55)
    f = np.fft.fftfreq(n, d=PIXEL_UM)
    fx, fy = np.meshgrid(f, f)
    spectrum = np.fft.fft2(o)
    errors = []
    for z in (0.0, 1.0, 2.0, 3.5):
        reference = 0.0
        for sx, sy, w in imager._source(512):
            field = np.fft.ifft2(_pupil(fx + sx, fy + sy, -z) * spectrum) + _pupil(np.array(sx), np.array(sy), -z)
            reference = reference + w * np.abs(field) ** 2
        reference -= 1.0
        out = imager.image(o, z)
        errors.append(float(np.linalg.norm(out - reference) / np.linalg.norm(reference)))
    assert max(errors) < 0.12, errors


def _pupil(fx, fy, delta_um):
    obj = Objective()
    k_n = obj.immersion_index / obj.wavelength_um
    g2 = fx**2 + fy**2
    kz = np.sqrt(np.maximum(k_n**2 - g2, 0.0))
    return (g2 <= (obj.na / obj.wavelength_um) ** 2) * np.exp(-2j * np.pi * (kz - k_n) * delta_um)


def test_kernels_conserve_background():
    optics = WeakObjectOptics(Objective(), PIXEL_UM)
    for z in (-3.0, 0.0, 1.5, 8.0):
        k = optics.kernels(z)
        assert k.absorption.sum() == pytest.approx(2.0, rel=1e-4)  # uniform absorption a -> 1 - 2a
        assert abs(k.phase.sum()) < 1e-4  # uniform phase is invisible
    assert np.abs(optics.kernels(0.0).phase).max() < 1e-6


def test_depth_of_field_matches_formula():
    """Full width over which a point's central spot keeps >= 81% of its in-focus energy (the Rayleigh
    criterion behind lambda*n/NA^2), plus the detector term n*e/(M*NA)."""
    obj = Objective()
    optics = WeakObjectOptics(obj, PIXEL_UM)
    zs = np.arange(0.0, 2.0, 0.05)
    peak = []
    for z in zs:
        k = optics.kernels(z)
        r = k.radius_px
        peak.append(k.absorption[r - 1 : r + 2, r - 1 : r + 2].sum())
    peak = np.asarray(peak) / peak[0]
    wave = 2 * float(np.interp(0.81, peak[::-1], zs[::-1]))
    wave_formula = obj.wavelength_um * obj.immersion_index / obj.na**2
    assert wave == pytest.approx(wave_formula, rel=0.1)
    total = wave + obj.immersion_index * 5.86 / (obj.magnification * obj.na)
    assert 1.3 <= total <= 1.6
    assert obj.depth_of_field_um(5.86) == pytest.approx(1.527, abs=0.01)


@pytest.mark.parametrize("kwargs, text", [({"na": -0.65}, "greater than 0"), ({"condenser_na": 0.9}, "condenser_na")])
def test_bad_optics_parameters_give_clear_errors(kwargs, text):
    with pytest.raises((ConfigError, ValueError), match=text):
        WeakObjectOptics(Objective(**kwargs), PIXEL_UM)


def test_zero_pixel_size_rejected():
    with pytest.raises(ConfigError, match="pixel_size_um must be > 0"):
        WeakObjectOptics(Objective(), 0.0)


@pytest.mark.parametrize("defocus_um, max_rel_l2", [(3.5, 0.08), (5.0, 0.12), (20.0, 0.10)])
def test_far_defocused_head_on_the_coarse_grid_matches_the_fine_grid(defocus_um, max_rel_l2):
    """Heads far from focus are imaged on a 2x grid for speed; the image must stay close to the fine one
    (the head's texture and vacuoles alias a little on the coarse grid: 7-10% L2)."""
    from sim.render import Renderer, View, _Accumulator

    cfg = SceneConfig(n_sperm=0, n_debris=0)
    renderer = Renderer(WeakObjectOptics(Objective(), PIXEL_UM), cfg.morphology, cfg.pipette)
    cell = sample_sperm(0, Motility.IMMOTILE, cfg.kinematics[Motility.IMMOTILE], cfg, np.random.default_rng(1))
    cell.path_pos_um[:] = [0.3, 0.1, 10.0 + defocus_um]
    view = View(1920, 1200, (660, 400, 600, 400), PIXEL_UM, (0.0, 0.0), 10.0)
    images = []
    for factor in (None, 1):
        if factor is not None:
            renderer._coarse_factor = lambda z: factor  # the reference: everything on the fine grid
        acc = _Accumulator(np.zeros((400, 600), np.float32))
        renderer._add_head(cell, view, acc, cell.head_center_um(), [np.zeros(3)])
        images.append(acc.delta)
    coarse, fine = images
    assert np.abs(fine).max() > 0.01  # the head is visible at all
    assert np.linalg.norm(coarse - fine) / np.linalg.norm(fine) < max_rel_l2


def test_symmetric_kernel_multiplier_convolves_like_filter2d():
    """The packed-spectrum product used for heads and flagella equals a direct convolution."""
    import cv2

    from sim.render import symmetric_kernel_multiplier

    kern = WeakObjectOptics(Objective(), PIXEL_UM).kernels(1.3).phase
    r = kern.shape[0] // 2
    image = np.zeros((120, 150), np.float32)
    image[r:-r, r:-r] = np.random.default_rng(0).standard_normal((120 - 2 * r, 150 - 2 * r))
    shape = (cv2.getOptimalDFTSize(120), cv2.getOptimalDFTSize(150))
    padded = np.zeros(shape, np.float32)
    padded[:120, :150] = image
    spectrum = cv2.dft(padded)
    out = cv2.idft(cv2.multiply(spectrum, symmetric_kernel_multiplier(kern, shape)),
                   flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)[:120, :150]
    direct = cv2.filter2D(image, -1, kern, borderType=cv2.BORDER_CONSTANT)
    assert np.abs(out - direct).max() < 1e-4 * np.abs(direct).max()


@pytest.mark.parametrize("z_um", [-4.8, -3.3, 3.0, 4.5])
def test_depth_basis_of_an_off_focus_band_reproduces_its_kernels(z_um):
    """The 3-5 um band is imaged through 6 basis kernels on the 2x grid; each depth's kernel within 5%."""
    from sim.optics import DepthBasis

    optics = WeakObjectOptics(Objective(), 2 * PIXEL_UM)
    morph = Morphology()
    ratio = morph.absorption_per_um / (2 * np.pi / Objective().wavelength_um * morph.tail_dn)
    basis = DepthBasis(optics, ratio, band_um=5.0, rank=6, inner_um=3.0)
    assert basis.covers(np.array([z_um])).all() and not basis.covers(np.array([0.0, 2.9, -5.2])).any()
    k = optics.kernels(z_um)
    pad = basis.radius_px - k.radius_px
    truth = np.pad(k.phase - ratio * k.absorption, pad)
    approx = sum(c * b for c, b in zip(basis.coefficients(np.array([z_um]))[:, 0], basis.kernels))
    assert np.linalg.norm(approx - truth) / np.linalg.norm(truth) < 0.05


def test_depth_basis_rejects_an_empty_band():
    from sim.optics import DepthBasis

    with pytest.raises(ConfigError, match="inner_um"):
        DepthBasis(WeakObjectOptics(Objective(), PIXEL_UM), 0.2, band_um=3.0, inner_um=3.0)


def test_expose_rejects_noise_of_another_shape():
    from sim.camera_model import SensorModel, expose

    with pytest.raises(ValueError, match="unit_noise has shape"):
        expose(np.ones((4, 6), np.float32), 5.0, 0.0, SensorModel(), np.zeros((6, 4), np.float32))
