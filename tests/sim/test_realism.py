"""Realism measurements: the same statistics on real and twin crops, and a domain classifier that cannot
tell a set from itself. MHSMA checks skip when ../shared is absent."""

import numpy as np
import pytest

from sim.realism import (
    MHSMA_UM_PER_PX,
    centre_crop,
    domain_auc,
    head_statistics,
    load_mhsma,
    mhsma_split,
    random_framing,
    to_twin_scale,
)

def _dark_oval(length_px: float, width_px: float, darkness: float, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:80, 0:80].astype(np.float32)
    inside = ((xx - 40) / (length_px / 2)) ** 2 + ((yy - 40) / (width_px / 2)) ** 2 <= 1
    img = 128.0 * (1 - darkness * inside) + rng.normal(0, 1.0, (80, 80))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_head_statistics_measure_a_known_oval():
    stats = head_statistics(_dark_oval(32, 20, 0.2, np.random.default_rng(0)))
    assert stats is not None
    assert stats.mean == pytest.approx(-0.2, abs=0.03)
    assert stats.axis_ratio == pytest.approx(1.6, abs=0.15)
    assert stats.length_um == pytest.approx(32 * 5.86 / 40, rel=0.1)
    assert head_statistics(np.full((80, 80), 128, np.uint8)) is None  # nothing there


def test_a_set_cannot_be_told_from_itself():
    rng = np.random.default_rng(1)
    crops = [_dark_oval(rng.uniform(26, 36), rng.uniform(16, 22), rng.uniform(0.1, 0.25), rng)[8:72, 8:72]
             for _ in range(120)]
    auc = domain_auc(crops[:60], crops[60:], list(range(60)))
    assert 0.3 < auc < 0.7


def test_random_framing_keeps_each_crop():
    crops = [np.arange(16, dtype=np.uint8).reshape(4, 4) + i for i in range(8)]
    framed = random_framing(crops, 0)
    assert all(sorted(a.ravel()) == sorted(b.ravel()) for a, b in zip(crops, framed))
    assert any(not np.array_equal(a, b) for a, b in zip(crops, framed))


def test_mhsma_split_is_fixed_and_disjoint():
    cal, held = mhsma_split(240)
    assert len(cal) == 160 and len(held) == 80 and not set(cal) & set(held)
    assert np.array_equal(mhsma_split(240)[1], held)


def test_real_heads_are_dark_textured_and_haloed(shared_dir):
    """The statistics the twin is calibrated on, as measured on MHSMA's held-out part."""
    real = load_mhsma(shared_dir / "data" / "mhsma")
    _, held = mhsma_split(len(real))
    stats = [s for s in (head_statistics(centre_crop(to_twin_scale(real[i], MHSMA_UM_PER_PX), 80)) for i in held) if s]
    assert len(stats) > 0.9 * len(held)
    assert -0.22 < np.median([s.mean for s in stats]) < -0.12
    assert np.median([s.halo for s in stats]) > 0.01
    assert 4.0 < np.median([s.length_um for s in stats]) < 5.5
