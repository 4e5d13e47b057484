"""The segmentation input: flat-fielding makes the network's input independent of the frame's brightness."""

import numpy as np
import pytest

from perception.runtime.seg_input import flat_field, network_input


def _field(seed: int = 0) -> np.ndarray:
    """A 0.4 um/px field of dark head-sized blobs and specks on an even background (relative intensity)."""
    rng = np.random.default_rng(seed)
    img = np.ones((240, 320), np.float32)
    yy, xx = np.mgrid[0:240, 0:320]
    for _ in range(25):
        cx, cy = rng.uniform(10, 310), rng.uniform(10, 230)
        a, b, t = rng.uniform(4, 6), rng.uniform(2.5, 3.5), rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)) / a
        v = (-(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)) / b
        img[u**2 + v**2 < 1] *= 0.4
    return img


@pytest.mark.parametrize("gain", [0.25, 0.6, 1.5])
def test_flat_field_does_not_depend_on_brightness_or_uneven_illumination(gain):
    scene = _field()
    reference = flat_field(np.clip(scene * 120, 0, 255).astype(np.uint8), 0.4)
    yy, xx = np.mgrid[0:240, 0:320]
    lamp = gain * (1 - 0.5 * ((xx - 60) ** 2 + (yy - 40) ** 2) / 400**2) * (1 + 0.3 * xx / 320)  # vignetting, tilt
    frame = np.clip(scene * 120 * lamp, 0, 255).astype(np.uint8)
    got = flat_field(frame, 0.4)
    heads = scene < 0.5
    # every head keeps its relative contrast (-0.6) within the 8-bit quantisation of a dark frame
    assert np.median(got[heads]) == pytest.approx(np.median(reference[heads]), abs=0.05)
    assert np.median(got[heads]) == pytest.approx(-0.6, abs=0.06)
    assert np.abs(np.median(got[~heads])) < 0.02  # the background is 0 wherever the lamp is dim or bright
    # a darker corner gives the same input as a bright one (standardisation by the frame's mean did not)
    corner = heads[:80, 220:]
    if corner.any():
        assert np.median(got[:80, 220:][corner]) == pytest.approx(np.median(got[heads]), abs=0.05)


def test_network_input_has_multiple_of_32_sides_and_mirrored_padding():
    """What crosses the region's border goes on across the padding: zero padding ended the pipette's glass
    there, and the network took that end for an opening."""
    frame = np.clip(_field(1) * 140, 0, 255).astype(np.uint8)[:233, :301]  # odd sizes
    frame[100:120, 260:] = 40  # a dark band (the glass) leaving the region at its right edge
    x, scale = network_input(frame, 0.4, 0.5)
    assert x.shape[:2] == (1, 1) and x.shape[2] % 32 == 0 and x.shape[3] % 32 == 0
    h, w = round(233 * scale), round(301 * scale)
    assert scale == pytest.approx(0.8, abs=0.01)
    img = x[0, 0]
    assert np.array_equal(img[h:, :w], img[h - 2 : 2 * h - img.shape[0] - 2 : -1, :w])  # the mirror of the rows above
    assert np.array_equal(img[:h, w:], img[:h, w - 2 : 2 * w - img.shape[1] - 2 : -1])
    assert np.all(img[84:92, w:] < -0.4)  # the band goes on into the padding
