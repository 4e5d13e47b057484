"""The shipped head segmentation on real frames (held out from its training) and on round debris."""

import numpy as np
import pytest

from drivers.frame import Frame
from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline


@pytest.fixture(scope="module")
def models() -> Models:
    return Models.load(PerceptionConfig(depth_source="none", backend="onnx", inference_threads=1))


def _heads(models: Models, pixels: np.ndarray, um_per_px: float):
    h, w = pixels.shape
    pipe = PerceptionPipeline(models, PerceptionConfig(roi_px=(w, h), depth_source="none"), sensor_shape=(h, w))
    return pipe.process(Frame(pixels, 0, 0.0, um_per_px, (0.0, 0.0), 0.0, 4.0)).detections


def test_heads_found_in_held_out_real_frames(models, shared_dir):
    """Frames from the development video's validation stretch (never trained on): a sane floor, far below
    what the benchmark measures (benchmarks/heads_real.py), far above the 0.4-0.57 of twin-only training."""
    from perception.training.real_frames import load_labelled_video
    from perception.training.seg_metrics import centres_in_boxes

    frames = [f for f in load_labelled_video(shared_dir / "data" / "sperm_video_real") if f.index in (120, 135, 150)]
    tp = fp = fn = 0
    for f in frames:
        found = np.array([d.centroid_px for d in _heads(models, f.image, 0.4)])
        a, b, c = centres_in_boxes(found, f.boxes[:, 1:])
        tp, fp, fn = tp + a, fp + b, fn + c
    assert len(frames) == 3
    assert tp / (tp + fn) > 0.8 and tp / (tp + fp) > 0.6


def test_round_debris_of_head_size_is_not_a_head(models):
    """Spheres as wide as a head, in and near focus, among sperm: the heads are tracked, the spheres not.

    At the network's working scale (0.5 um/px) a 3 um sphere and a 4.5 x 3 um head are a few pixels
    apart in shape, and the segmentation alone marks most such spheres as head (5 of 6 here with the
    shipped weights); the tracker's shape test (median elongation over the track's frames) is what keeps
    them out of what perception hands to control, so that output is what is checked. The margin is thin:
    over six such fields benchmarks/heads_real.py counts how many spheres get through."""
    from sim.scenarios import FIELD_SPHERES_UM as spheres
    from sim.scenarios import round_debris_field
    from sim.standalone import CropRenderer

    crops = CropRenderer()  # the reference rig: 40x NA 0.65, 0.1465 um/px
    rng = np.random.default_rng(5)
    scene = round_debris_field(5, sphere_dz_um=[0.0, 0.5, -0.5, 1.0, -1.0, 0.3],
                               sphere_radius_um=[1.4, 1.6, 1.5, 1.3, 1.7, 1.5])
    pipe = PerceptionPipeline(models, PerceptionConfig(roi_px=(512, 512), depth_source="none"), sensor_shape=(512, 512))
    for k in range(8):  # a still field, fresh sensor noise each frame
        pixels, _ = crops.image(scene, crops.view((0.0, 0.0), 10.0, 512), rng)
        est = pipe.process(Frame(pixels, k, k * 0.025, crops.pixel_size_um, (0.0, 0.0), 0.0, 4.0))
    tracked_um = (np.array([t.position_px for t in est.tracks]).reshape(-1, 2) - 256) * crops.pixel_size_um

    def near(points_um: np.ndarray, radius_um: float) -> int:
        if not len(tracked_um):
            return 0
        d = np.linalg.norm(tracked_um[:, None] - points_um[None], axis=2)
        return int((d.min(axis=0) < radius_um).sum())

    heads_centre = np.array([c.head_center_um()[:2] for c in scene.sperm])
    assert near(heads_centre, 2.0) >= 4  # of 5 heads
    assert near(spheres, 2.0) <= 1  # of 6 spheres
