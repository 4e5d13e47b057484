"""Control: transitions, safety before motion, stale estimates, emergency stop, campaigns."""

from copy import deepcopy
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

from calibration.transforms import CameraStageTransform, ManipulatorTransform
from control.aspiration import AspirationController, FocalPlaneDepth, NoDepth
from control.safety import SafetyConfig, SafetyError, check_estimate, check_tip_target
from control.states import STATE_PARAMS, MachineParams, State, check_transition
from drivers.errors import DeviceError
from drivers.stop import ESTOP
from perception.runtime.estimate import BoreSighting, Estimate, HeadDetection, TipEstimate, TrackState


def controller(rig) -> AspirationController:
    ms = rig.manipulator.settings
    tf = ManipulatorTransform(np.eye(3), np.array(ms.mount_origin_lab_um) - np.array(ms.home_um))
    cam = CameraStageTransform(rig.frames.pixel_size_um, 1920, 1200)
    return AspirationController(rig.stage, rig.manipulator, rig.pump, rig.focus, rig.clock, cam, tf, NoDepth())


def estimate(rig, target=(400.0, 600.0), tip=(1165.0, 600.0), age_s=0.0, track_id=7) -> Estimate:
    now = rig.clock.now()
    track = TrackState(track_id, (0.0, 0.0), (-40.0, 0.0), 30, 0, 0.9, "rapid_progressive", 40.0, 90.0,
                       position_px=target, velocity_px_s=(-270.0, 0.0), detection=0)
    return Estimate(1, now - age_s, now, {}, [HeadDetection(target, 0.0, 400.0, 0.9, 1.6)], [track], track_id, target,
                    target, None, None, TipEstimate(tip, 0.9), None)


def test_states_declared_as_typed_data():
    params = MachineParams()
    assert params.aspirating.rate_nl_s == 1.2 and params.tracking.offset_px == 100
    assert set(STATE_PARAMS) >= {State.SEARCHING, State.TRACKING, State.ASPIRATING, State.VERIFYING}
    with pytest.raises(ValueError):
        params.aspirating.rate_nl_s = -1  # validated on assignment: the GUI cannot set nonsense
    check_transition(State.TRACKING, State.POSITIONING_Z)
    check_transition(State.APPROACHING, State.ABORTED)
    with pytest.raises(ValueError, match="illegal transition Idle -> Aspirating"):
        check_transition(State.IDLE, State.ASPIRATING)


def test_search_select_track_sequence(sim_rig):
    ctl = controller(sim_rig)
    seen = []
    ctl.transitioned.connect(seen.append)
    ctl.start()
    for _ in range(6):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
    assert [t.dst for t in seen] == [State.SEARCHING, State.SELECTING, State.TRACKING]
    assert all(t.reason for t in seen)
    assert sim_rig.stage.is_moving()  # the servo is driving the stage toward the offset


def test_target_below_floor_is_refused_before_any_motion(sim_rig):
    ctl = controller(sim_rig)
    before = sim_rig.manipulator.position_um().copy()
    with pytest.raises(SafetyError, match="below the floor limit"):
        ctl.move_tip_lab([30.0, 0.0, 1.0])
    with pytest.raises(SafetyError, match="outside the workspace"):
        check_tip_target([500.0, 0.0, 10.0], SafetyConfig())
    sim_rig.clock.sleep(0.5)
    assert np.allclose(sim_rig.manipulator.position_um(), before)


def test_stale_estimates_stop_the_approach(sim_rig):
    ctl = controller(sim_rig)
    ctl.start()
    for _ in range(6):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
    assert ctl.state == State.TRACKING and sim_rig.stage.is_moving()
    with pytest.raises(SafetyError, match="old"):
        check_estimate(0.5, None, SafetyConfig())
    sim_rig.clock.sleep(0.025)
    ctl.step(estimate(sim_rig, age_s=0.5))
    sim_rig.clock.sleep(0.1)
    assert not sim_rig.stage.is_moving()
    assert ctl.state == State.TRACKING  # waits for fresh estimates, does not act on old ones


def test_emergency_stop_halts_a_move_in_flight_and_faults(sim_rig):
    ctl = controller(sim_rig)
    handle = ctl.move_tip_lab(ctl.tip_lab_um() + [0, 0, 20.0], 10.0)
    sim_rig.clock.sleep(0.3)
    ESTOP.trigger("test")
    z_stop = sim_rig.manipulator.position_um()[2]
    sim_rig.clock.sleep(1.0)
    assert sim_rig.manipulator.position_um()[2] == pytest.approx(z_stop, abs=0.06)
    with pytest.raises(DeviceError):
        handle.wait(1.0)
    ctl.start()
    for _ in range(8):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
    assert ctl.state == State.FAULT and "emergency stop" in ctl.events[-1].reason


def test_abort_stops_pump_and_retracts_along_the_axis(sim_rig):
    ctl = controller(sim_rig)
    ctl.start()
    sim_rig.pump.aspirate(1.2)
    tip0 = ctl.tip_lab_um()
    ctl.abort("operator")
    sim_rig.clock.sleep(1.0)
    assert ctl.state == State.ABORTED and sim_rig.pump.rate_nl_s() == 0
    tip1 = ctl.tip_lab_um()
    assert tip1[0] > tip0[0] + 20 and tip1[2] > tip0[2]  # backed out along +x (into the pipette's axis) and up


@pytest.mark.parametrize("device, retracts", [("camera", True), ("manipulator", False)])
def test_a_fault_retracts_the_pipette_unless_the_manipulator_itself_failed(sim_rig, device, retracts):
    """A drive sent over a failed manipulator's link would move the pipette at a time nobody chose."""
    ctl = controller(sim_rig)
    ctl.start()
    sim_rig.pump.aspirate(1.2)
    tip0 = ctl.tip_lab_um()
    ctl.fault(device, f"{device}: link lost")
    sim_rig.clock.sleep(1.0)
    assert ctl.state == State.FAULT and ctl.failure_mode == f"fault:{device}" and sim_rig.pump.rate_nl_s() == 0
    moved_um = float(np.linalg.norm(ctl.tip_lab_um() - tip0))
    assert (moved_um > 20) if retracts else (moved_um == 0)


def test_an_estimate_is_immutable_and_the_controller_leaves_it_as_it_came(sim_rig):
    """The GUI and the trial log read the very estimate the controller steps on: no one may change it."""
    e = estimate(sim_rig)
    with pytest.raises(FrozenInstanceError):
        e.frame_id = 2
    with pytest.raises(FrozenInstanceError):
        e.tracks[0].position_px = (0.0, 0.0)
    with pytest.raises(FrozenInstanceError):
        e.tip.position_px = (0.0, 0.0)
    before = deepcopy(e)
    ctl = controller(sim_rig)
    ctl.start()
    for _ in range(20):
        ctl.step(e)
        sim_rig.clock.sleep(0.025)
    assert ctl.state != State.IDLE and e == before


def _verification_estimate(rig, ctl, tip, target=None, detections=(), bore_um=None) -> Estimate:
    """A frame near the end of an aspiration, with sample-frame positions as the pipeline gives them
    (stage at the origin): the target seen at ``target``, or no longer seen (the glass hides it, or it is
    gone); ``bore_um``: a head seen inside the bore, this far up."""
    now = rig.clock.now()
    to_stage = lambda p: tuple(ctl.camera_tf.px_to_lab_um(p)[0])  # noqa: E731
    heads = [HeadDetection(d, 0.0, 400.0, 0.9, 1.6) for d in detections]
    bore = (BoreSighting(bore_um, 6.0),) if bore_um is not None else ()
    if target is None:
        return Estimate(1, now, now, {}, heads, [], None, None, None, None, None, TipEstimate(tip, 0.9), to_stage(tip),
                        bore=bore)
    track = TrackState(7, to_stage(target), (0.0, 0.0), 30, 0, 0.9, "immotile", 0.0, 0.0, position_px=target,
                       detection=len(heads))
    return Estimate(1, now, now, {}, [*heads, HeadDetection(target, 0.0, 400.0, 0.9, 1.6)], [track], 7, target, target,
                    to_stage(target), None, TipEstimate(tip, 0.9), to_stage(tip), bore=bore)


@pytest.mark.parametrize("left_behind", [None, "spot", "rim", "bystander", "unseen", "still_in_bore"])
def test_verification_backs_the_tip_away_and_fails_a_target_left_behind(sim_rig, left_behind):
    """Debris taken for a head (or a cell that passed beneath the tip) vanishes under the glass just like
    an aspirated cell; backing the tip away uncovers it, where it was last seen or, drawn by the flow,
    at the opening's rim, so the attempt fails instead of passing. Debris that already lay beside the
    opening when the pump started (4.5 um from the target, 2.4 um from the opening) is not the target.
    Success needs the head seen inside the bore: vanishing at the opening alone ("unseen") does not do, nor
    does a sighting in the bore that stays where it lay in the dish while the glass backs away over it
    ("still_in_bore": debris, or a cell above or beneath the glass, seen through it 24 um up the bore)."""
    ctl = controller(sim_rig)
    ctl.start()
    ctl.state, ctl.target_id = State.ASPIRATING, 7  # skip the approach: only verification is under test
    spot, tip, bystander = (1150.0, 600.0), (1165.0, 600.0), (1180.0, 606.0)
    ctl._last_target_stage_um = np.asarray(ctl.camera_tf.px_to_lab_um(spot)[0])
    ctl._note_bystanders(_verification_estimate(sim_rig, ctl, tip, target=spot, detections=[spot, bystander]))
    still = 24.0 if left_behind == "still_in_bore" else None
    for _ in range(3):
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, tip, target=spot, bore_um=still))
    x0 = ctl.tip_lab_um()[0]
    for _ in range(200):
        sim_rig.clock.sleep(0.025)
        moved_px = (ctl.tip_lab_um()[0] - x0) / sim_rig.frames.pixel_size_um
        tip_now = (tip[0] + moved_px, tip[1])
        heads = {None: [], "spot": [spot], "rim": [(tip[0] - 2.0, tip[1] + 3.0)],
                 "bystander": [(bystander[0] + 0.5, bystander[1] - 0.5)], "unseen": [], "still_in_bore": []}[left_behind]
        bore_um = 9.0 if left_behind in (None, "bystander") else None if still is None else still - moved_px * \
            sim_rig.frames.pixel_size_um
        ctl.step(_verification_estimate(sim_rig, ctl, tip_now, detections=heads, bore_um=bore_um))
        assert not sim_rig.stage.is_moving()  # the vanished target's coasting track is not chased
        if ctl.state not in (State.ASPIRATING, State.VERIFYING):
            break
    assert ctl.tip_lab_um()[0] - x0 == pytest.approx(MachineParams().verifying.withdraw_um, abs=0.2)
    if left_behind in ("spot", "rim"):
        assert ctl.failure_mode == "left_behind" and State.RETARGET in [e.dst for e in ctl.events]
        assert "not aspirated" in next(e.reason for e in ctl.events if e.dst == State.RETARGET)
        sim_rig.clock.sleep(2.0)
        assert ctl.tip_lab_um()[0] == pytest.approx(x0, abs=0.2)  # back where it was, for the next attempt
    elif left_behind in ("unseen", "still_in_bore"):
        assert ctl.failure_mode == "unseen_inside" and State.SUCCESS not in [e.dst for e in ctl.events]
    else:
        assert ctl.state == State.SUCCESS and "not still" in ctl.events[-1].reason


class _EdgeDepth:
    """A depth source reading a fixed depth each frame, limited to a span of depths like the net's."""

    name, range_limited = "fake", True

    def __init__(self, depth_um: float, span_um: tuple[float, float] = (-2.0, 2.0)) -> None:
        self.depth_um, self.span_um, self.count = depth_um, span_um, 0

    def __call__(self, est):
        from control.aspiration import DepthReading

        self.count += 1
        return DepthReading(self.depth_um, 0.05, self.count, self.span_um)


@pytest.mark.parametrize("depth_um, span_um, refocused_um", [
    (2.0, (-2.0, 2.0), 4.0), (-1.95, (-2.0, 2.0), -4.0), (1.5, (-2.0, 2.0), 0.0), (8.7, (-2.0, 2.0), 4.0),
    # the shipped net's classes as head heights (labels less the zero plane's 1.21 um offset): its top end
    # is +0.79 um, so a cell read there is refocused up, while one read at -2.0 um is inside the span
    (0.75, (-3.21, 0.79), 4.0), (-2.0, (-3.21, 0.79), 0.0), (-3.2, (-3.21, 0.79), -4.0)])
def test_a_cell_read_at_the_edge_of_the_depth_range_is_refocused_on_then_passed_over(sim_rig, depth_um, span_um,
                                                                                     refocused_um):
    """The classifier measures a 4 um span: a cell read at either end may lie 4 um beyond, where the tip
    would pass over it. The focus steps toward it (2 um at a time, at most 4 um from the start); a cell
    still at the end is then passed over before the tip moves, without using up an attempt."""
    ctl = controller(sim_rig)
    ctl.depth = _EdgeDepth(depth_um, span_um)
    ctl.start()
    ctl.state, ctl.target_id = State.POSITIONING_Z, 7  # skip search and XY tracking: only Z is under test
    z0, focus0 = ctl.tip_lab_um()[2], sim_rig.focus.z_um()
    for _ in range(200):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
        if ctl.state != State.POSITIONING_Z or sim_rig.manipulator.is_moving():
            break
    assert sim_rig.focus.z_um() - focus0 == pytest.approx(refocused_um, abs=0.05)
    if refocused_um:
        assert ctl.state == State.SEARCHING and ctl.failure_mode == "out_of_range" and ctl._attempts == 0
        assert "edge of the measurable range" in ctl.events[-2].reason
        assert ctl.tip_lab_um()[2] == pytest.approx(z0)
    else:
        assert ctl.state == State.POSITIONING_Z and sim_rig.manipulator.is_moving()


def _approach_estimate(rig, target, velocity_um_s, seen=True) -> Estimate:
    """A frame during the approach: the target track ``target`` px (1165, 600 is the tip) moving at
    ``velocity_um_s`` across the image, or the target no longer detected (its track coasts)."""
    now = rig.clock.now()
    v_px = tuple(v / rig.frames.pixel_size_um for v in velocity_um_s)
    track = TrackState(7, (0.0, 0.0), velocity_um_s, 30, 0 if seen else 3, 0.9, "slow_progressive", 11.0, 30.0,
                       position_px=target, velocity_px_s=v_px, detection=0 if seen else None)
    heads = [HeadDetection(target, 0.0, 400.0, 0.9, 1.6)] if seen else []
    return Estimate(1, now, now, {}, heads, [track], 7, target if seen else None, target, None, None,
                    TipEstimate((1165.0, 600.0), 0.9), None)


@pytest.mark.parametrize("gap_um, velocity_um_s, pumps", [
    (6.0, (0.0, 11.0), True),     # swims across the axis: the stage brings it in, pump on within half the distance
    (12.0, (0.0, 11.0), False),   # ... but not before
    (12.0, (30.0, 0.0), True),    # swims into the opening: timed by its swimming
    (6.0, (-30.0, 0.0), True),    # swims away, close: the stage brings it in
])
def test_the_pump_starts_for_a_cell_brought_to_the_opening_whatever_it_swims(sim_rig, gap_um, velocity_um_s, pumps):
    ctl = controller(sim_rig)
    ctl.start()
    ctl.state, ctl.target_id = State.APPROACHING, 7  # only the pump-on rule is under test
    target = (1165.0 - gap_um / sim_rig.frames.pixel_size_um, 600.0)
    sim_rig.clock.sleep(0.025)
    ctl.step(_approach_estimate(sim_rig, target, velocity_um_s))
    assert (ctl.state == State.ASPIRATING) is pumps
    assert (sim_rig.pump.rate_nl_s() > 0) is pumps


def test_a_target_vanishing_at_the_opening_before_the_pump_started_is_aspirated(sim_rig):
    """The stage can push a cell swimming across the axis into the opening; the glass then hides it and its
    track coasts there. That is an entry, not a lost target: the pump starts (it used not to, the cell
    was lost and counted as escaped while inside the pipette)."""
    ctl = controller(sim_rig)
    ctl.start()
    ctl.state, ctl.target_id = State.APPROACHING, 7
    for x in (1100.0, 1130.0):  # 9.5 and 5 um in front of the opening
        sim_rig.clock.sleep(0.025)
        ctl.step(_approach_estimate(sim_rig, (x, 600.0), (0.0, 11.0), seen=x < 1120))
    assert ctl.state == State.ASPIRATING and sim_rig.pump.rate_nl_s() > 0
    assert "swimming across or away" in ctl.events[-1].reason


@pytest.mark.parametrize("glass_edge", [False, True])
def test_a_sighting_within_the_glass_after_entry_does_not_undo_the_entry(sim_rig, glass_edge):
    """After the head entered, the tracker may hand the vanished target's track a blob on the glass's
    edge: that is not the cell coming back out, and the aspiration still verifies as a success."""
    ctl = controller(sim_rig)
    ctl.start()
    ctl.state, ctl.target_id = State.ASPIRATING, 7
    spot, tip = (1150.0, 600.0), (1165.0, 600.0)
    for _ in range(3):
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, tip, target=spot))
    x0 = ctl.tip_lab_um()[0]
    for i in range(200):
        sim_rig.clock.sleep(0.025)
        moved_px = (ctl.tip_lab_um()[0] - x0) / sim_rig.frames.pixel_size_um
        tip_now = (tip[0] + moved_px, tip[1])
        edge = (tip_now[0] + 30.0, tip[1] + 31.0)  # 4.5 um off the axis: the wall's outer edge
        ctl.step(_verification_estimate(sim_rig, ctl, tip_now, target=edge if glass_edge and 4 <= i < 10 else None,
                                        bore_um=9.0))
        if ctl.state not in (State.ASPIRATING, State.VERIFYING):
            break
    assert ctl.state == State.SUCCESS, [e.reason for e in ctl.events]


def _aspirating(rig) -> tuple[AspirationController, tuple[float, float], float]:
    """A controller aspirating target 7 with the pump on; the tip's image position; image px per um."""
    ctl = controller(rig)
    ctl.start()
    ctl.state, ctl.target_id = State.ASPIRATING, 7
    rig.pump.aspirate(1.2)
    return ctl, (1165.0, 600.0), 1 / rig.frames.pixel_size_um


def test_a_head_missed_for_a_frame_near_the_opening_has_not_entered(sim_rig):
    """A single missed detection 6 um in front of the opening, then the head seen again beside it, is a
    cell passing by: no entry is registered and the pump keeps running; a head that stays hidden at the
    opening has entered and is verified."""
    ctl, tip, px_um = _aspirating(sim_rig)
    frames = [(1165.0 - 6 * px_um, 600.0), None, (1165.0 - 3 * px_um, 600.0 - 5 * px_um)] * 8  # ~0.6 s
    for target in frames:
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, tip, target=target))
    assert ctl.state == State.ASPIRATING and sim_rig.pump.rate_nl_s() > 0
    for target in [(1165.0 - 2 * px_um, 600.0)] + [None] * 40:  # last seen at the opening, then hidden
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, tip, target=target))
    assert ctl.state == State.VERIFYING


def test_a_coasting_track_that_runs_into_the_opening_is_not_an_entry(sim_rig):
    """The tracker's filtered position lags a turning head and a coasting track runs on along its last
    heading: a cell seen turning away 12 um in front of the opening, whose track then coasts into it, has
    not entered (traced on development seed 2, trial 0: read as an entry, a false success). Where the head
    was seen decides, not where its track is."""
    ctl, tip, px_um = _aspirating(sim_rig)
    now = sim_rig.clock.now
    for i in range(40):  # 1 s
        sim_rig.clock.sleep(0.025)
        track_px = (1165.0 - max(5.0 - 0.5 * i, -1.0) * px_um, 600.0)  # runs on into the opening
        seen = i < 4
        head = (1165.0 - (12.0 + 0.5 * i) * px_um, 600.0)  # seen turning away
        track = TrackState(7, (0.0, 0.0), (20.0, 0.0), 30, 0 if seen else i - 3, 0.9, "slow_progressive", 11.0,
                           30.0, position_px=track_px, detection=0 if seen else None)
        ctl.step(Estimate(1, now(), now(), {}, [HeadDetection(head, 0.0, 400.0, 0.9, 1.6)] if seen else [], [track],
                          7, track_px, track_px, None, None, TipEstimate(tip, 0.9), None))
    assert ctl.state == State.ASPIRATING and sim_rig.pump.rate_nl_s() > 0  # no entry: the window runs on


def test_the_oracle_reads_the_swimming_path_depth_not_the_swinging_head(sim_rig):
    from control.depth_sources import OracleDepth

    frames = [sim_rig.frames.snap() for _ in range(20)]
    rapid = [s.id for s in frames[0].truth.sperm if s.motility.name == "RAPID"]
    by_id = {i: [next(s for s in f.truth.sperm if s.id == i) for f in frames] for i in rapid}
    head_steps = np.concatenate([np.abs(np.diff([s.depth_um for s in ss])) for ss in by_id.values()])
    path_steps = np.concatenate([np.abs(np.diff([s.path_depth_um for s in ss])) for ss in by_id.values()])
    assert path_steps.mean() < 0.25 * head_steps.mean()  # the head swings in z with the beat; the path does not
    cell = by_id[rapid[0]][-1]
    est = replace(estimate(sim_rig, target=cell.head_px), extra={"truth": frames[-1].truth})
    reading = OracleDepth()(est)
    assert reading.mean_um == pytest.approx(cell.path_depth_um) and reading.observations == 1
    # a cell read beyond the network's +-2 um is refocused on or passed over, as with the network (the
    # edge test above; 8.7 um is a cell seen on a development trial)
    assert OracleDepth.range_limited


def test_a_target_without_any_depth_reading_is_passed_over(sim_rig):
    """The oracle reads no depth where no cell is (debris shaped like a head): the target is passed over
    after ``no_reading_s`` without using up an attempt, instead of waiting out the Z timeout."""
    ctl = controller(sim_rig)
    ctl.depth = lambda est: None
    ctl.depth.name = "oracle"
    ctl.start()
    ctl.state, ctl.target_id = State.POSITIONING_Z, 7
    ctl._entered_s = sim_rig.clock.now()
    z0 = ctl.tip_lab_um()[2]
    for _ in range(40):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
        if ctl.state != State.POSITIONING_Z:
            break
    assert ctl.state == State.SEARCHING and ctl.failure_mode == "no_depth" and ctl._attempts == 0
    assert 0.5 < ctl.events[-2].t_s - ctl.events[-3].t_s < 0.6 and "not a cell" in ctl.events[-2].reason
    assert ctl.tip_lab_um()[2] == pytest.approx(z0) and ctl.last_depth is None


def test_without_depth_perception_the_tip_stays_at_its_height(sim_rig):
    """``none``: XY alignment only; the depth step ends at once and the tip keeps the operator's height
    through the approach."""
    ctl = controller(sim_rig)
    ctl.start()
    ctl.state, ctl.target_id = State.POSITIONING_Z, 7
    z0 = ctl.tip_lab_um()[2]
    ctl.step(estimate(sim_rig))
    assert ctl.state == State.APPROACHING and "no depth perception" in ctl.events[-1].reason
    for _ in range(20):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig, target=(1000.0, 600.0)))
    assert not sim_rig.manipulator.is_moving() and ctl.tip_lab_um()[2] == pytest.approx(z0)


def test_the_focal_plane_source_brings_the_tip_to_the_focal_plane(sim_rig):
    """``focal``: the cell assumed in focus; the tip goes to the focal plane (never below the floor limit)."""
    ctl = controller(sim_rig)
    ctl.depth = FocalPlaneDepth()
    ctl.start()
    ctl.state, ctl.target_id = State.POSITIONING_Z, 7
    sim_rig.focus.move_to_um(ctl.tip_lab_um()[2] + 3.0).wait(5)
    goal = max(sim_rig.focus.z_um(), ctl.cfg.safety.tip_floor_um)
    for _ in range(400):
        sim_rig.clock.sleep(0.025)
        ctl.step(estimate(sim_rig))
        if ctl.state != State.POSITIONING_Z:
            break
    assert ctl.state == State.APPROACHING and ctl.tip_lab_um()[2] == pytest.approx(goal, abs=0.2)


def _still_target_to_aspiration(rig, ctl) -> float:
    """Approach a cell that does not swim, far and then close, until the pump starts; returns the kept
    distance (px) the approach had come down to while the cell was far."""
    ctl.start()
    ctl.state, ctl.target_id = State.APPROACHING, 7
    for gap_um in (20.0, 6.0):
        target = (1165.0 - gap_um / rig.frames.pixel_size_um, 600.0)
        for _ in range(60):
            rig.clock.sleep(0.025)
            ctl.step(_approach_estimate(rig, target, (0.0, 0.0)))
        if gap_um == 20.0:
            kept_px = ctl._offset_px
            assert ctl.state == State.APPROACHING
    assert ctl.state == State.ASPIRATING
    return kept_px


def test_a_cell_that_does_not_swim_is_held_at_a_standoff_and_never_pushed_back(sim_rig):
    """A cell lying on the floor sits below the bore: the glass pushed over it would leave it beneath the
    opening. The stage brings it to a standoff in front of the opening, and while the flow draws it in the
    stage follows without pushing it back out."""
    ctl = controller(sim_rig)
    kept_px = _still_target_to_aspiration(sim_rig, ctl)
    standoff_px = ctl.cfg.params.approaching.standoff_um / sim_rig.frames.pixel_size_um
    assert kept_px == pytest.approx(standoff_px) and sim_rig.pump.rate_nl_s() > 0
    px_um = 1 / sim_rig.frames.pixel_size_um
    drawn_in = (1165.0 - 2.0 * px_um, 600.0)  # the flow has drawn it to 2 um, closer than the standoff
    kept = []
    servo = ctl._servo_xy
    ctl._servo_xy = lambda est, offset_px: kept.append(offset_px) or servo(est, offset_px)
    for _ in range(10):
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, (1165.0, 600.0), target=drawn_in))
    assert ctl.state == State.ASPIRATING
    assert kept and max(kept) == pytest.approx(2.0 * px_um)  # the stage keeps it where the flow brought it


@pytest.mark.parametrize("last_seen_um, entered", [(4.0, False), (2.0, True)])
def test_a_cell_drawn_in_by_the_flow_enters_only_when_lost_near_the_rim(sim_rig, last_seen_um, entered):
    """Lost at the standoff, a still head lies in the glass's shadow; lost near the rim, it has entered."""
    ctl = controller(sim_rig)
    _still_target_to_aspiration(sim_rig, ctl)
    tip = (1165.0, 600.0)
    for target in [(1165.0 - last_seen_um / sim_rig.frames.pixel_size_um, 600.0)] * 3 + [None] * 30:
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, tip, target=target))
    assert (ctl.state == State.VERIFYING) is entered


@pytest.mark.parametrize("left_behind", [False, True])
def test_a_still_cell_lost_in_front_of_the_opening_is_looked_for_when_the_window_ends(sim_rig, left_behind):
    """Beside an opening held above the focal plane (a cell on the floor) the out-of-focus glass's halo hides
    a faint head 5-10 um out. Lost there it has not entered, nor escaped: the pump runs its whole window,
    then the tip backs away and the spot checks decide (the flow took it in, or it still lies there): a cell
    that does not swim cannot have swum on beneath the glass, so no sighting in the bore is asked of it."""
    ctl = controller(sim_rig)
    _still_target_to_aspiration(sim_rig, ctl)
    px = 1 / sim_rig.frames.pixel_size_um
    tip, spot = (1165.0, 600.0), (1165.0 - 8.0 * px, 600.0)
    for target in [spot] * 3 + [None] * 30:
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, tip, target=target))
    assert ctl.state == State.ASPIRATING and sim_rig.pump.rate_nl_s() > 0  # no entry declared on this sight
    for _ in range(100):
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, tip))
        if ctl.state != State.ASPIRATING:
            break
    assert ctl.state == State.VERIFYING and "lost from sight" in ctl.events[-1].reason
    assert sim_rig.pump.rate_nl_s() == 0
    assert ctl.events[-1].t_s - ctl.events[-2].t_s == pytest.approx(MachineParams().aspirating.timeout_s, abs=0.05)
    x0 = ctl.tip_lab_um()[0]
    for _ in range(200):
        sim_rig.clock.sleep(0.025)
        tip_now = (tip[0] + (ctl.tip_lab_um()[0] - x0) * px, tip[1])
        ctl.step(_verification_estimate(sim_rig, ctl, tip_now, detections=[spot] if left_behind else []))
        if ctl.state != State.VERIFYING:
            break
    if left_behind:
        assert ctl.failure_mode == "left_behind"
    else:  # the flow carries a drawn-in cell up the bore out of view: the spot checks verify it, unseen
        assert ctl.state == State.SUCCESS and "drawn in by the flow" in ctl.events[-1].reason


def test_a_still_cell_lost_beyond_the_pump_on_distance_escaped(sim_rig):
    ctl = controller(sim_rig)
    _still_target_to_aspiration(sim_rig, ctl)
    far = (1165.0 - 20.0 / sim_rig.frames.pixel_size_um, 600.0)
    for target in [far] * 3 + [None] * 120:
        sim_rig.clock.sleep(0.025)
        ctl.step(_verification_estimate(sim_rig, ctl, (1165.0, 600.0), target=target))
        if ctl.state != State.ASPIRATING:
            break
    assert ctl.state != State.VERIFYING and ctl.failure_mode == "escaped"


def test_a_head_drawn_up_the_bore_stops_the_pump_even_while_the_targets_track_stays_outside(sim_rig):
    """The tracker may hand the target's track to a neighbour waiting in front of the opening as the target
    enters (traced on development seed 2, trial 32): the track still sees "the target" outside while the
    bore shows a head carried up it by the flow. The pump stops at once (run on for its window, it carried
    the cell out of the field of view), and the cell inside is a success, whose record says that a head
    still lay where the target was."""
    ctl, tip, px_um = _aspirating(sim_rig)
    neighbour = (tip[0] - 6 * px_um, tip[1])
    ctl._last_target_stage_um = np.asarray(ctl.camera_tf.px_to_lab_um(neighbour)[0])
    x0, stopped_at = ctl.tip_lab_um()[0], None
    for i in range(120):
        sim_rig.clock.sleep(0.025)
        tip_now = (tip[0] + (ctl.tip_lab_um()[0] - x0) * px_um, tip[1])
        axial = 7.0 + 1.1 * i if ctl.state == State.ASPIRATING else 12.0
        ctl.step(replace(_verification_estimate(sim_rig, ctl, tip_now, target=neighbour, detections=[neighbour]),
                         bore=(BoreSighting(axial, 8.0),)))
        if stopped_at is None and sim_rig.pump.rate_nl_s() == 0:
            stopped_at = i
        if ctl.done:
            break
    assert stopped_at == 3  # the fourth frame of the head advancing up the bore
    assert "drawn" in next(e.reason for e in ctl.events if e.dst == State.VERIFYING)
    assert ctl.state == State.SUCCESS, [e.reason for e in ctl.events]
    assert "another cell went in" in ctl.events[-1].reason
