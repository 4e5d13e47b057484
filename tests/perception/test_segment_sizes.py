"""Any ROI, frame size and pixel size reaches the shipped UNeXt at a size it accepts (sides multiples of
32), at the network's own scale, and the outputs come back in frame pixels."""

import numpy as np
import pytest

from drivers.frame import Frame
from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline, roi_around_tip


@pytest.fixture(scope="module")
def models() -> Models:
    return Models.load(PerceptionConfig(depth_source="none", backend="onnx", inference_threads=1))


def _frame(shape: tuple[int, int], pixel_um: float) -> Frame:
    rng = np.random.default_rng(0)
    pixels = rng.normal(128, 6, shape).clip(0, 255).astype(np.uint8)
    return Frame(pixels, 0, 0.0, pixel_um, (0.0, 0.0), 0.0, 4.0)


@pytest.mark.parametrize("shape, roi_px, pixel_um", [
    ((527, 697), (697, 527), 0.38),        # an odd-sized recording, enlarged to the network's scale
    ((1200, 1920), (228, 232), 0.1465),    # ROI halves to 114 x 116: multiples of 16 were 112 ("57 by 58")
    ((384, 640), (640, 384), 0.42),
    ((31, 45), (45, 31), 0.1465),          # smaller than one network block
    ((600, 800), (333, 101), 1.0),
])
def test_segment_accepts_any_size(models, shape, roi_px, pixel_um):
    pipe = PerceptionPipeline(models, PerceptionConfig(roi_px=roi_px, depth_source="none"), sensor_shape=shape)
    f = _frame(shape, pixel_um)
    roi = pipe._roi(f)
    probs, scale = pipe._segment(f, roi)
    s = pixel_um / models.seg_pixel_um
    assert scale == pytest.approx(s, abs=0.5 / roi[2])  # the resampled width is whole pixels
    assert probs.shape == (4, round(roi[3] * s), round(roi[2] * s))
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    est = pipe.process(f)  # the whole frame path runs too
    assert est.extra["roi"] == roi


def test_network_scale_follows_the_frame_pixel_size(models):
    # the shipped weights carry their nominal pixel size; every frame is resampled to it
    net = models.seg_pixel_um
    assert 0.28 <= net <= 0.7
    pipe = PerceptionPipeline(models, PerceptionConfig(depth_source="none"))
    assert pipe.seg_scale(0.1465) == pytest.approx(0.1465 / net)   # the twin's frames
    assert pipe.seg_scale(0.4) == pytest.approx(0.4 / net)
    fixed = PerceptionPipeline(models, PerceptionConfig(depth_source="none", seg_scale=0.25))
    assert fixed.seg_scale(0.4) == 0.25  # an explicit scale wins


@pytest.mark.parametrize("glass_in_view_um, above_focus_um", [(12.0, 0.0), (12.0, 4.5), (23.0, 0.0), (23.0, 4.5)])
def test_the_tip_is_found_when_the_glass_leaves_the_region_at_its_padded_edge(sim_rig, models, glass_in_view_um,
                                                                              above_focus_um):
    """The twin's pipette enters the processed region from its right edge, which the network pads (640 px at
    0.1465 um/px are 188 network pixels, padded to 192): in focus, and held 4.5 um above the focal plane as
    over a cell on the floor. Zero padding lost the tip in both 12 um cases."""
    pipe = PerceptionPipeline(models, PerceptionConfig(depth_source="none", roi_px=(640, 384)),
                              sensor_shape=sim_rig.camera.sensor_shape)
    f = sim_rig.frames.snap()
    x0, _, rw, _ = pipe._roi(f)
    px_um = f.pixel_size_um
    tf = sim_rig.calibration.manip_tf
    lab = tf.to_lab(sim_rig.manipulator.position_um())
    lab[0] += (x0 + rw - glass_in_view_um / px_um - f.truth.tip_px[0]) * px_um
    lab[2] = max(sim_rig.focus.z_um() + above_focus_um, sim_rig.safety.tip_floor_um + 0.5)
    sim_rig.manipulator.move_to_um(tf.to_manipulator(lab)).wait(10)
    f = sim_rig.frames.snap()
    est = pipe.process(f)
    assert est.extra["roi"][0] == x0 and est.tip is not None
    along, across = np.asarray(est.tip.position_px) - np.asarray(f.truth.tip_px)
    assert abs(along) * px_um < 3.0 and abs(across) * px_um < 1.0  # the defocused glass looks longer


@pytest.mark.parametrize("tip_px, expected", [
    ((1000.0, 600.0), (616, 408, 640, 384)),  # 60% across, centred in height
    ((100.0, 50.0), (0, 0, 640, 384)),        # near the frame's corner: the region stays inside the frame
    ((1900.0, 1190.0), (1280, 816, 640, 384)),
])
def test_the_region_holds_the_tip_60_percent_across_and_stays_in_the_frame(tip_px, expected):
    assert roi_around_tip(tip_px, (1920, 1200), (640, 384)) == expected
    assert roi_around_tip(tip_px, (320, 200), (640, 384)) == (0, 0, 320, 200)  # a region larger than the frame
