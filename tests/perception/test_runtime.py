import time
from dataclasses import replace

import numpy as np
import pytest

from drivers.frame import Frame
from perception.classes import DEPTHS_UM
from perception.runtime.depth_filter import DepthBayesFilter
from perception.runtime.pipeline import Models, PerceptionConfig, PerceptionPipeline
from perception.runtime.tracking import Tracker, casa, who_class
from perception.runtime.worker import PerceptionWorker


def blob_seg(delay_s: float = 0.0):
    """A stand-in segmentation model (the shipped UNeXt is tested elsewhere): dark blobs are heads."""

    def seg(x: np.ndarray) -> np.ndarray:
        time.sleep(delay_s)
        img = x[0, 0]
        logits = np.zeros((1, 4, *img.shape), np.float32)
        logits[0, 0] = 1.0
        logits[0, 1] = np.where(img < -0.5, 3.0, -3.0)  # flat-fielded input: relative contrast
        return logits

    return seg


def peaked_depth(x: np.ndarray) -> np.ndarray:
    logits = np.zeros((x.shape[0], 9), np.float32)
    logits[:, 6] = 4.0  # always "+1.0 um"
    return logits


def frame(i: int, t: float, blobs=((300.0, 200.0),), pixels=None) -> Frame:
    if pixels is None:
        pixels = np.full((480, 640), 128, np.uint8)
        for (x, y) in blobs:
            pixels[int(y) - 9 : int(y) + 9, int(x) - 15 : int(x) + 15] = 20  # head-sized: ~4.4 x 2.6 um
    return Frame(pixels, i, t, 0.1465, (100.0, 50.0), 3.0, 4.0)


def pipeline(delay_s=0.0) -> PerceptionPipeline:
    cfg = PerceptionConfig(roi_px=(640, 480), seg_scale=1.0, want_motility=("rapid_progressive", "slow_progressive",
                                                                             "non_progressive", "immotile"))
    # a clock that stands still: the latency lead (velocity x processing time) does not depend on the load
    return PerceptionPipeline(Models(blob_seg(delay_s), peaked_depth), cfg, sensor_shape=(480, 640), clock=lambda: 0.0)


def test_estimates_carry_provenance_and_timings():
    p = pipeline()
    est = None
    for i in range(12):
        est = p.process(frame(i, i * 0.025, blobs=[(300 + 2 * i, 200)]))
    assert est.frame_id == 11 and est.capture_time_s == pytest.approx(0.275)
    assert est.finish_time_s >= 0 and {"segment_ms", "track_ms", "depth_ms", "total_ms"} <= set(est.timings_ms)
    assert len(est.detections) == 1
    assert est.detections[0].centroid_px == pytest.approx((300 + 22 - 0.5, 199.5), abs=1.0)
    assert est.target_id is not None
    assert est.target_depth.mean_um == pytest.approx(1.0, abs=0.3)
    # stage coordinates: 0.1465 um/px from the optical axis, plus the stage position
    x_um = 100.0 + (est.target_px[0] - 320) * 0.1465
    assert est.target_stage_um[0] == pytest.approx(x_um, abs=1.0)


def test_worker_drops_stale_frames_and_survives_corrupt_ones():
    worker = PerceptionWorker(pipeline(delay_s=0.05)).start()
    got, rejected = [], []
    worker.estimate_ready.connect(got.append)
    worker.frame_rejected.connect(lambda fid, why: rejected.append((fid, why)))
    try:
        for i in range(20):
            worker.submit(frame(i, i * 0.01))
            time.sleep(0.005)
        bad = object.__new__(Frame)
        object.__setattr__(bad, "pixels", np.full((480, 640), np.nan, np.float32))
        object.__setattr__(bad, "frame_id", 999)
        time.sleep(0.2)
        worker.submit(bad)
        time.sleep(0.2)
        worker.submit(frame(1000, 1.0))
        deadline = time.time() + 5
        while (not got or got[-1].frame_id != 1000) and time.time() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert worker.dropped_frames > 5
    assert len(got) < 20
    ids = [e.frame_id for e in got]
    assert ids == sorted(ids)  # newest first: never an older frame after a newer one
    assert rejected and rejected[0][0] == 999 and "NaN" in rejected[0][1]
    assert got[-1].frame_id == 1000  # kept running after the corrupt frame


def test_depth_uncertainty_grows_when_lost_and_shrinks_when_seen():
    f = DepthBayesFilter(DEPTHS_UM, diffusion_um2_s=1.0)
    probs = np.full(9, 0.02)
    probs[4] = 0.84
    t = 0.0
    for _ in range(10):
        t += 0.025
        seen = f.step(t, probs)
    stds_lost = []
    for _ in range(40):
        t += 0.025
        stds_lost.append(f.step(t, None).std_um)
    assert seen.std_um < 0.3 and seen.mean_um == pytest.approx(0.0, abs=0.05)
    assert all(b >= a - 1e-9 for a, b in zip(stds_lost, stds_lost[1:]))
    assert stds_lost[-1] > 2 * seen.std_um
    again = f.step(t + 0.025, probs)
    assert again.std_um < stds_lost[-1]


def test_depth_filter_follows_the_evidence_after_a_confident_wrong_start():
    """A cell first read confidently at -2 um that then reads +1.5 um: the filter must move there within a
    fraction of a second (a pure random walk leaves +1.5 um a prior of ~1e-30 and stays near -2)."""
    wrong, right = np.full(9, 0.005), np.full(9, 0.02)
    wrong[0], right[7] = 0.96, 0.84
    for relock, follows in ((1.0, True), (0.0, False)):
        f = DepthBayesFilter(DEPTHS_UM, diffusion_um2_s=1.0, relock_per_s=relock)
        t = 0.0
        for _ in range(20):
            t += 0.025
            f.step(t, wrong)
        for _ in range(12):  # 0.3 s of the true depth
            t += 0.025
            est = f.step(t, right)
        assert (abs(est.mean_um - 1.5) < 0.3) is follows, (relock, est.mean_um)


def test_tracker_keeps_ids_through_crossing_and_short_miss():
    tracker = Tracker()
    ids_a, ids_b = set(), set()
    for i in range(60):
        t = i * 0.025
        a = (15 + 1.2 * i, 30 + 0.3 * i)  # um: two cells crossing at 48 um/s
        b = (15 + 1.2 * i, 48 - 0.3 * i)
        dets = [a, b]
        if 25 <= i <= 27:
            dets = dets[:1]  # b missed for 3 frames near the crossing
        states = tracker.update(np.array(dets), t)
        if i > 5 and abs(a[1] - b[1]) > 4:  # identity is only defined away from the crossing point
            for s in states:
                (ids_a if abs(s.position_um[1] - a[1]) < abs(s.position_um[1] - b[1]) else ids_b).add(s.id)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_a_coasting_track_does_not_take_the_head_of_a_neighbour_seen_all_along():
    """A cell swims into the pipette and vanishes (its track coasts on); a still cell lies beside its
    path. When the coasting prediction comes to lie nearer the neighbour's head than the neighbour's own
    track does, the head still goes to the neighbour, seen in every frame: the vanished cell must not
    "come back out" as the cell beside the glass (a development trial's undone entry)."""
    tracker = Tracker()
    for i in range(20):
        t = i * 0.025
        a = (-20.0 + i, 0.0)  # 40 um/s along x, last detected at (-6, 0)
        dets = [(0.0, 0.0 if i % 2 else 0.8)] + ([a] if i <= 14 else [])
        tracker.update(np.array(dets), t)
    coasting = next(tr for tr in tracker.tracks if tr.misses > 0)
    still = next(tr for tr in tracker.tracks if tr.misses == 0)
    t = 20 * 0.025
    head = coasting.predicted_position(t)  # where the coasting track expects its cell: 1 um from the still one
    assert np.linalg.norm(head - still.predicted_position(t)) < 2.0
    tracker.update(np.array([head]), t)
    assert tracker.get(still.id).misses == 0 and tracker.get(coasting.id).misses > 0


@pytest.mark.parametrize("beat_hz", [10.0, 20.0, 30.0])
def test_tracker_keeps_one_id_on_a_head_swinging_about_its_path(beat_hz):
    """A rapid cell's head swings +-3 um across its path at the beat frequency (ALH 6 um): sampled at
    40 fps it can land on the other side of the path each frame, and must stay one track."""
    tracker = Tracker()
    ids, misses = set(), []
    for i in range(80):
        t = i * 0.025
        head = (10 + 50 * t, 20 + 3.0 * np.sin(2 * np.pi * beat_hz * t + 0.7))
        states = tracker.update(np.array([head]), t)
        if i >= tracker.cfg.confirm_hits:
            assert len(states) == 1
            ids.add(states[0].id)
            misses.append(states[0].misses)
    assert len(ids) == 1 and max(misses) == 0


def test_casa_on_a_known_path():
    fps, v, amp, f = 40.0, 40.0, 2.0, 10.0  # um/s, um, Hz
    t = np.arange(0, 2, 1 / fps)
    xy_um = np.stack([v * t, amp * np.sin(2 * np.pi * f * t + 0.3)], axis=1)
    kin = casa(xy_um / 0.1465, t, 0.1465)
    assert kin["VSL"] == pytest.approx(v, rel=0.1)
    assert kin["VCL"] > 2 * kin["VSL"]
    assert kin["LIN"] < 0.5 and 0 < kin["WOB"] <= 1
    assert kin["ALH"] == pytest.approx(2 * amp, rel=0.35)
    assert kin["BCF"] == pytest.approx(2 * f, rel=0.3)
    assert who_class(kin) == "rapid_progressive"


def test_focus_sweep_finds_an_immotile_cell(sim_rig):
    from drivers.interfaces import Roi
    from perception.runtime.focus import focus_sweep
    from sim.config import Motility

    world = sim_rig.world
    cell = next(c for c in world.scene.sperm if c.motility == Motility.IMMOTILE)
    sim_rig.stage.move_to_um(*cell.head_center_um()[:2]).wait(5)
    sim_rig.camera.set_roi(Roi(896, 536, 128, 128))
    z_cell = cell.head_center_um()[2]
    sim_rig.focus.move_to_um(z_cell + 0.7).wait(5)
    res = focus_sweep(sim_rig.focus, sim_rig.frames, np.arange(-3.0, 3.01, 0.25), (32, 32, 64, 64))
    assert res.reliable
    assert abs(res.best_z_um - z_cell) < 1.0


def _track(tid: int, x: float, y: float, vx: float, vy: float = 0.0, motility: str = "rapid_progressive"):
    from perception.runtime.estimate import TrackState

    return TrackState(tid, (x * 0.15, y * 0.15), (vx * 0.15, vy * 0.15), 20, 0, 0.9, motility, 40.0, 60.0,
                      position_px=(x, y), velocity_px_s=(vx, vy))


def test_target_policy_wants_cells_swimming_into_the_opening_and_keeps_its_choice():
    from perception.runtime.target import TargetPolicy

    policy = TargetPolicy(axis_deg=0.0)  # the pipette runs toward +x from its opening
    tip = np.array([400.0, 200.0])
    away = _track(1, 340, 300, -300)  # nearest, but swims away from the opening
    into = _track(2, 200, 200, 300, 40)  # swims along the axis
    beside_tip = _track(5, 390, 210, 300)  # swims along the axis too, but lies in the glass's shadow
    assert policy.select([away, into, beside_tip], tip, (400, 640)) == 2
    # a nearer candidate appearing later does not steal the target mid-approach
    nearer = _track(3, 260, 140, 300)
    assert policy.select([away, into, nearer], tip, (400, 640)) == 2
    # after a failed attempt the controller's rejection makes the policy choose anew, never 2 again
    policy.reject(2)
    assert policy.select([away, into, nearer], tip, (400, 640)) == 3
    policy.reject(3)
    assert policy.select([away, into, nearer], tip, (400, 640)) is None
    # immotile cells have no heading: only the motility filter applies
    still = _track(4, 200, 200, 0.0, motility="immotile")
    assert TargetPolicy(want=("immotile",), axis_deg=0.0).select([still], tip, (400, 640)) == 4


def test_target_policy_keeps_its_target_to_the_image_edge_but_chooses_new_ones_inside_the_margin():
    """A development trial's false success: the target swam past the opening near the image's edge, the
    policy dropped it 60 px from the edge, and its vanishing looked to the controller like an entry."""
    from perception.runtime.target import TargetPolicy

    policy = TargetPolicy(axis_deg=0.0)
    tip = np.array([524.0, 191.0])
    assert policy.select([_track(48, 350, 200, 300)], tip, (384, 640)) == 48
    assert policy.select([_track(48, 600, 150, 300)], tip, (384, 640)) == 48  # inside the margin: kept
    assert policy.select([_track(48, 645, 150, 300)], tip, (384, 640)) is None  # out of the image: dropped
    assert TargetPolicy(axis_deg=0.0).select([_track(7, 600, 150, 300)], np.array([300.0, 150.0]), (384, 640)) is None


def test_target_policy_never_chooses_a_head_seen_through_the_glass():
    """A cell already drawn into the pipette is seen in its bore, drifting along the axis the way a good
    target swims: behind the opening and within the glass's outline it is never chosen; a cell beside
    the glass, or in front of the opening, still is."""
    from perception.runtime.target import TargetPolicy

    tip = np.array([300.0, 200.0])
    in_bore = _track(1, 500, 205, 300)  # 200 px up the pipette, on its axis
    assert TargetPolicy(axis_deg=0.0).select([in_bore], tip, (400, 640)) is None
    beside = _track(2, 500, 300, 300)  # 100 px to the side of the axis: outside the glass
    assert TargetPolicy(axis_deg=0.0).select([in_bore, beside], tip, (400, 640)) == 2
    in_front = _track(3, 100, 200, 300)
    assert TargetPolicy(axis_deg=0.0).select([in_bore, in_front], tip, (400, 640)) == 3


def test_target_policy_takes_a_cell_swimming_across_after_waiting_in_vain():
    """A field where every cell swims away or across: after ``patience_s`` without a target a cell
    swimming across the axis is taken (the stage brings it to the opening); one swimming away never is."""
    from perception.runtime.target import TargetPolicy

    policy = TargetPolicy(axis_deg=0.0, patience_s=4.0)
    tip = np.array([400.0, 200.0])
    away, across = _track(1, 200, 150, -300), _track(2, 200, 250, 10, 300)  # headings 180 and 88 deg
    for t_s in np.arange(0.0, 3.95, 0.025):
        assert policy.select([away, across], tip, (400, 640), now_s=float(t_s)) is None
    assert policy.select([away, across], tip, (400, 640), now_s=4.0) == 2
    policy.reject(2)
    assert policy.select([away, across], tip, (400, 640), now_s=4.1) is None  # the one swimming away: never
    # once a target was chosen the wait starts over, with the strict gate
    fresh = TargetPolicy(axis_deg=0.0, patience_s=4.0)
    into = _track(3, 200, 200, 300)
    assert fresh.select([into], tip, (400, 640), now_s=0.0) == 3
    fresh.reject(3)
    assert fresh.select([across], tip, (400, 640), now_s=10.0) is None


def test_tracker_reports_only_blobs_shaped_like_heads():
    """Debris does not swim either: for immotile targets shape tells it from a head. A head stays reported
    once seen as one, even when it blurs round out of focus."""
    from perception.runtime.target import TargetPolicy

    tracker = Tracker()
    blobs_um = np.array([[10.0, 20.0], [30.0, 20.0], [50.0, 25.0]])  # head, round debris, tail fragment
    shapes = np.array([[9.5, 1.5], [9.0, 1.02], [1.5, 2.0]])
    for i in range(40):
        if i == 10:
            shapes[0] = (9.0, 1.0)  # the head goes out of focus and segments round
        states = tracker.update(blobs_um, i * 0.025, shapes)
        if i >= 3:
            assert len(states) == 1 and states[0].position_um == pytest.approx((10.0, 20.0), abs=0.1), i
    head_id = states[0].id
    tracks = [replace(t, position_px=(150.0, 200.0)) for t in states]
    assert TargetPolicy(want=("immotile",), axis_deg=0.0).select(tracks, np.array([400.0, 200.0]), (400, 640)) == head_id
    assert len(_confirmed(blobs_um)) == 3  # without shapes every confirmed track is reported


def test_tracker_leaves_out_blobs_round_on_the_frame_whatever_the_segmentation_says():
    """A sphere as wide as a head can segment as elongated as a head at 0.5 um/px; on the frame's own
    pixels it is round (elongation 1.00-1.02), which a head, even 2 um out of focus, is not."""
    tracker = Tracker()
    blobs_um = np.array([[10.0, 20.0], [30.0, 20.0], [50.0, 25.0]])  # head in focus, sphere, head below focus
    shapes = np.array([[9.5, 1.25, 1.4], [9.0, 1.2, 1.01], [8.0, 1.15, 1.04]])
    for i in range(5):
        states = tracker.update(blobs_um, i * 0.025, shapes)
    assert sorted(round(s.position_um[0]) for s in states) == [10, 50]


def _confirmed(blobs_um: np.ndarray) -> list:
    tracker = Tracker()
    for i in range(4):
        states = tracker.update(blobs_um, i * 0.025)
    return states


@pytest.mark.parametrize("centre", [(320, 200), (0, 0), (5, 300), (639, 383), (600, 370), (-10, 5)])
def test_depth_crop_mirrors_the_frame_at_its_border(centre):
    """The crop fed to the depth classifier: 96x96 around the head, mirrored where it leaves the frame."""
    from types import SimpleNamespace

    from perception.training.datasets import standardise

    pixels = np.random.default_rng(0).integers(0, 255, (384, 640)).astype(np.uint8)
    n = 96
    x0, y0 = centre[0] - n // 2, centre[1] - n // 2
    expected = np.pad(pixels, n, mode="reflect")[y0 + n : y0 + 2 * n, x0 + n : x0 + 2 * n]
    pipeline = SimpleNamespace(cfg=PerceptionConfig())
    got = PerceptionPipeline._crop(pipeline, SimpleNamespace(pixels=pixels), centre)
    assert got.shape == (n, n) and np.array_equal(got, standardise(expected))


@pytest.mark.parametrize("box", [(1, 40), (2, 20), (40, 1), (20, 2), (12, 7)])
def test_head_blobs_of_any_shape_give_their_weighted_centre(box):
    """A head segmented as a thin streak (a narrow box) is measured like any other blob."""
    from perception.classes import HEAD
    from perception.runtime.detect import heads_from_probs

    probs = np.zeros((4, 60, 80), np.float32)
    w, h = box
    rng = np.random.default_rng(1)
    patch = rng.uniform(0.6, 1.0, (h, w)).astype(np.float32)
    probs[HEAD, 10 : 10 + h, 30 : 30 + w] = patch
    (det,) = heads_from_probs(probs, scale=1.0, um_per_px=1.0, min_area_um2=5.0)
    ys, xs = np.mgrid[10 : 10 + h, 30 : 30 + w]
    assert det.centroid_px == pytest.approx(((xs * patch).sum() / patch.sum(), (ys * patch).sum() / patch.sum()))
    assert det.confidence == pytest.approx(patch.mean(), rel=1e-5)
    axis_deg = 0.0 if w > h else 90.0  # the long side, as an undirected axis
    assert abs((det.orientation_deg - axis_deg + 90.0) % 180.0 - 90.0) < 1.0
    assert det.elongation > 1.0


@pytest.mark.parametrize("um_per_px", [0.1465, 0.4])
def test_elongation_in_the_frame_tells_a_head_from_a_round_particle(um_per_px):
    """Measured on the frame's own pixels: a 4.5 x 3 um dark ellipse reads its axis ratio, a 3 um disc
    reads round, and a neighbour beyond the window does not count."""
    import cv2

    from perception.runtime.detect import elongation_in_frame

    def frame_with(draw) -> np.ndarray:
        img = np.full((200, 200), 150.0, np.float32)
        draw(img)
        return cv2.GaussianBlur(img, (0, 0), 0.3 / um_per_px)

    s = 1.0 / um_per_px
    head = frame_with(lambda im: cv2.ellipse(im, (100, 100), (round(2.25 * s), round(1.5 * s)), 30, 0, 360, 60.0, -1))
    disc = frame_with(lambda im: (cv2.circle(im, (100, 100), round(1.5 * s), 60.0, -1),
                                  cv2.ellipse(im, (100 + round(6.0 * s), 100), (round(2.25 * s), 2), 0, 0, 360, 60.0, -1)))
    assert elongation_in_frame(head, (100.0, 100.0), um_per_px) == pytest.approx(1.5, abs=0.12)
    assert elongation_in_frame(disc, (100.0, 100.0), um_per_px) < 1.06
    assert np.isnan(elongation_in_frame(np.full((50, 50), 150, np.uint8), (25.0, 25.0), um_per_px))  # nothing dark


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_tip_stays_on_the_glass_when_a_head_touches_the_opening(side):
    """A head merged into the pipette's blob at the opening must not move the tip onto the head."""
    from perception.runtime.detect import tip_from_mask

    mask = np.zeros((200, 300), bool)
    mask[80:121, :201] = True  # glass 41 px wide from the left border, opening at x = 200, axis y = 100
    clean = tip_from_mask(mask)[0]
    assert clean == pytest.approx((200.0, 100.0), abs=0.5)
    merged = mask.copy()
    merged[72:86, 195:222] = True  # a head (14 px wide) at the opening's upper edge, 21 px beyond it
    merged[100:104, 201:212] = True  # a tail fragment on the axis in front of it
    rotate = {"left": lambda m: m, "right": lambda m: m[:, ::-1], "top": lambda m: m.T,
              "bottom": lambda m: m.T[::-1, :]}[side]
    to_frame = {"left": lambda x, y: (x, y), "right": lambda x, y: (299 - x, y), "top": lambda x, y: (y, x),
                "bottom": lambda x, y: (y, 299 - x)}[side]
    tip, _ = tip_from_mask(rotate(merged))
    assert tip == pytest.approx(to_frame(200.0, 100.0), abs=1.0)


def test_tracks_end_when_their_cell_is_gone():
    """A cell followed for a second that leaves coasts no longer than max_misses frames; a blob seen for two
    frames (debris in a blurred frame) is gone two frames after it went; neither is reported as seen
    (misses == 0) once it went."""
    tracker = Tracker()
    cell_id = None
    for i in range(40):
        dets = [(10 + 1.2 * i, 20.0)]
        if i in (5, 6):
            dets.append((60.0, 60.0))  # a blob seen twice
        states = tracker.update(np.array(dets), i * 0.025)
        cell_id = states[0].id if states else cell_id
    blob = [tr for tr in tracker.tracks if tr.id != cell_id]
    assert blob == []  # removed within two frames of its last sighting
    last_seen = {}
    for i in range(40, 80):  # the cell is gone
        states = tracker.update(np.zeros((0, 2)), i * 0.025)
        assert all(s.misses > 0 for s in states)
        for s in states:
            last_seen[s.id] = i
    assert tracker.tracks == []
    assert last_seen[cell_id] - 39 <= tracker.cfg.max_misses
