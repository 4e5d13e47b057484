"""Head anatomy: shapes in realistic proportions and sizes, anatomy present, projection with roll."""

import numpy as np
import pytest

from sim.head import HeadConfig, HeadShape, head_transmission, sample_head

PIXEL_UM = 5.86 / 40
K0 = 2 * np.pi / 0.55


def _heads(n: int, seed: int = 0, **kwargs):
    rng = np.random.default_rng(seed)
    cfg = HeadConfig(**kwargs)
    return [sample_head(cfg, rng) for _ in range(n)]


def test_shape_classes_come_in_their_configured_proportions():
    heads = _heads(2000)
    cfg = HeadConfig()
    total = sum(cfg.shape_mix.values())
    for shape, weight in cfg.shape_mix.items():
        share = np.mean([h.shape == shape for h in heads])
        assert share == pytest.approx(weight / total, abs=0.03), shape
    assert np.mean([h.shape == HeadShape.NORMAL for h in heads]) > 0.6


def test_normal_heads_follow_live_head_sizes():
    """MSOME: nucleus 4.75 +- 0.28 x 3.28 +- 0.20 um (live, unstained): length/width about 1.45."""
    heads = [h for h in _heads(800, 1) if h.shape == HeadShape.NORMAL]
    lengths = np.array([h.length_um for h in heads])
    widths = np.array([h.width_um for h in heads])
    assert lengths.mean() == pytest.approx(4.75, abs=0.05) and lengths.std() == pytest.approx(0.28, abs=0.05)
    assert widths.mean() == pytest.approx(3.28, abs=0.05)
    assert 1.3 < np.median(lengths / widths) < 1.6


@pytest.mark.parametrize("shape, check", [
    (HeadShape.TAPERED, lambda h: h.length_um / h.width_um > 2.0),
    (HeadShape.ROUND, lambda h: h.length_um / h.width_um < 1.05),
    (HeadShape.LARGE, lambda h: h.length_um * h.width_um > 1.15 * 4.75 * 3.28),
    (HeadShape.SMALL, lambda h: h.length_um * h.width_um < 0.85 * 4.75 * 3.28),
    (HeadShape.PYRIFORM, lambda h: h.half_width[8] < 0.6 * h.half_width[-9]),  # narrow base, broad front
])
def test_abnormal_shapes_have_their_defining_geometry(shape, check):
    rng = np.random.default_rng(2)
    assert all(check(sample_head(HeadConfig(), rng, shape)) for _ in range(40))


def test_anatomy_acrosome_and_vacuoles():
    heads = _heads(1000, 3)
    acro = np.array([(1 - h.acrosome_u) / 2 for h in heads])
    assert np.mean((acro >= 0.4) & (acro <= 0.7)) == pytest.approx(0.75, abs=0.05)  # WHO: 40-70% of the head
    large = np.mean([any(v.radius_um >= 0.4 for v in h.vacuoles) for h in heads])
    assert large == pytest.approx(0.13, abs=0.03)  # MHSMA: 13% of heads with abnormal vacuoles
    assert np.mean([len(h.vacuoles) > 0 for h in heads]) > 0.5
    assert all(h.acrosome_dn < h.nucleus_dn < h.postacrosomal_dn for h in heads)


def test_rolled_head_projects_narrower_and_keeps_its_optical_path():
    head = sample_head(HeadConfig(), np.random.default_rng(4), HeadShape.NORMAL)
    n = 64
    face = head_transmission(head, 0.0, 1.0, 0.0, (n / 2, n / 2), (n, n), PIXEL_UM, K0)
    edge = head_transmission(head, np.pi / 2, 1.0, 0.0, (n / 2, n / 2), (n, n), PIXEL_UM, K0)
    rows_face = np.flatnonzero(np.abs(face).max(axis=1) > 1e-3)
    rows_edge = np.flatnonzero(np.abs(edge).max(axis=1) > 1e-3)
    assert len(rows_edge) < 0.5 * len(rows_face)  # across the head: width face-on, thickness edge-on
    # the projected volume (optical path summed over the image) is the same whichever way it faces
    phase = lambda o: np.angle(1 + o).sum()  # noqa: E731
    assert phase(edge) == pytest.approx(phase(face), rel=0.1)


def test_strong_phase_of_a_head():
    """A head delays light by about a radian: it is not a weak object."""
    head = sample_head(HeadConfig(), np.random.default_rng(5), HeadShape.NORMAL)
    o = head_transmission(head, 0.0, 1.0, 0.0, (32, 32), (64, 64), PIXEL_UM, K0)
    assert 0.6 < np.abs(np.angle(1 + o)).max() < 2.0
    assert 0.05 < 1 - np.abs(1 + o).min() < 0.4  # and loses light to extinction
