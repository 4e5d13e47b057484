"""The tip guard and the floor: randomised checks that no command below the floor limit reaches the
manipulator, from the guard's own arithmetic up to the controller driven by arbitrary estimates."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration.transforms import ManipulatorTransform
from control.aspiration import AspirationController, DepthReading
from control.safety import SafetyConfig, SafetyError, SafetySettings, TipGuard
from control.states import State
from drivers.errors import LimitError
from perception.runtime.estimate import Estimate, HeadDetection, TipEstimate, TrackState

coord = st.floats(-60, 60, allow_nan=False)


def transform(yaw_deg: float, tilt: float) -> ManipulatorTransform:
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    a = np.array([[c, -s, 0.0], [s, c, 0.0], [-tilt, 0.0, 1.0]])
    return ManipulatorTransform(a, np.array([0.0, 0.0, 10.0]))


def axis_paths(start: np.ndarray, target: np.ndarray, n: int = 5) -> np.ndarray:
    """Points along every path that moves the axes one after another, in each order."""
    points = []
    for order in itertools.permutations(range(3)):
        p = start.copy()
        for axis in order:
            for f in np.linspace(0, 1, n):
                q = p.copy()
                q[axis] = start[axis] + f * (target[axis] - start[axis])
                points.append(q)
            p[axis] = target[axis]
    return np.array(points)


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(yaw=st.floats(-180, 180), tilt=st.floats(-0.6, 0.6), start=st.tuples(coord, coord, coord),
       target=st.tuples(coord, coord, coord), floor=st.floats(-2, 2))
def test_an_allowed_move_stays_above_the_floor_on_every_axis_order(yaw, tilt, start, target, floor):
    cfg = SafetyConfig(floor_z_um=floor)
    tf = transform(yaw, tilt)
    guard = TipGuard(cfg, tf)
    start, target = np.array(start), np.array(target)
    try:
        guard("manipulator", start, target, 100.0)
    except LimitError:
        return
    path_z = tf.to_lab(axis_paths(start, target))[:, 2]
    start_z = tf.to_lab(start)[2]
    # never below the limit, unless the tip already was and the move takes it nowhere lower
    assert path_z.min() >= min(cfg.tip_floor_um, start_z) - 1e-6
    assert tf.to_lab(target)[2] >= cfg.tip_floor_um - 1e-6 or tf.to_lab(target)[2] >= start_z - 1e-6


def test_a_path_dipping_between_its_ends_is_refused():
    """x down the tilted axis first, then z up: both ends above the limit, the corner below."""
    tf = transform(0.0, 0.5)
    guard = TipGuard(SafetyConfig(), tf)  # limit 4.3 um; lab z = 10 + z - 0.5 x
    start, target = np.array([0.0, 0.0, 0.0]), np.array([14.0, 0.0, 6.0])  # z 10 -> 9, corner (14, 0, 0): 3
    with pytest.raises(LimitError, match="the path to the tip target reaches z=3.00 um.*move up first"):
        guard("manipulator", start, target, 100.0)
    guard("manipulator", start, np.array([0.0, 0.0, 6.0]), 100.0)  # up first: allowed


def test_near_the_floor_moves_are_slow_and_every_move_is_capped():
    guard = TipGuard(SafetyConfig(), ManipulatorTransform(np.eye(3), np.zeros(3)))
    assert guard("m", np.array([0, 0, 50.0]), np.array([0, 0, 60.0]), 1000.0) == 200.0
    assert guard("m", np.array([0, 0, 50.0]), np.array([0, 0, 5.0]), 1000.0) == 20.0


def test_safety_settings_refuse_inconsistent_limits():
    with pytest.raises(ValueError, match="min < max"):
        SafetySettings(workspace_um=((10, -10), (-1, 1), (0, 5)))
    with pytest.raises(ValueError, match="exceeds max_tip_speed"):
        SafetySettings(slow_speed_um_s=300)
    with pytest.raises(ValueError, match="below the dish floor"):
        SafetySettings(workspace_um=((-1, 1), (-1, 1), (-5, 5)))


class ScriptedDepth:
    """Depth readings drawn by hypothesis, NaN and absurd values included."""

    name = "scripted"

    def __init__(self, readings) -> None:
        self.readings = iter(readings)

    def __call__(self, est):
        try:
            mean, std = next(self.readings)
        except StopIteration:
            return None
        return DepthReading(mean, std, 100)


frame = st.tuples(
    st.floats(1000, 1200), st.floats(560, 640),  # target px (the tip sits at 1165, 600; the servo holds 1065)
    st.floats(-40, 40), st.floats(-40, 40),  # target velocity um/s
    st.integers(0, 3),  # frames since the target was last seen
)
reading = st.tuples(st.one_of(st.floats(-30, 30), st.sampled_from([float("nan"), float("inf"), -1e9])),
                    st.floats(0.01, 3))


def test_the_controller_never_commands_below_the_floor(sim_rig):
    """The controller driven by arbitrary estimates and depth readings (NaN, inf, far below the dish) from
    the states that move the tip in depth: every command that reaches the manipulator stays above the
    floor limit, and the examples do take the tip down to it."""
    rig = sim_rig
    cal = rig.calibration
    guard = TipGuard(rig.safety, cal.manip_tf)
    commands: list = []
    start_move = rig.manipulator._start_move

    def spy(target, speed):
        commands.append((rig.manipulator.position_um().copy(), target.copy()))
        return start_move(target, speed)

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(frames=st.lists(frame, min_size=5, max_size=60), readings=st.lists(reading, min_size=5, max_size=60),
           focus_um=st.floats(-1, 6), state=st.sampled_from(["Tracking", "PositioningZ", "Approaching"]))
    def example(frames, readings, focus_um, state):
        rig.pump.stop()
        rig.manipulator._start_move = start_move
        rig.manipulator.move_to_um(rig.manipulator.settings.home_um).wait(5)  # the twin's mounting: 12 um up
        rig.focus.move_to_um(focus_um).wait(5)
        rig.manipulator._start_move = spy
        first = len(commands)
        ctl = AspirationController(rig.stage, rig.manipulator, rig.pump, rig.focus, rig.clock, cal.camera_tf,
                                   cal.manip_tf, ScriptedDepth(readings), rig.config.control.controller_config(rig.safety))
        ctl.start()
        ctl.state, ctl.target_id = State(state), 7
        try:
            for x, y, vx, vy, misses in frames:
                rig.clock.sleep(0.025)
                now = rig.clock.now()
                v_px = (vx / rig.frames.pixel_size_um, vy / rig.frames.pixel_size_um)
                track = TrackState(7, (0.0, 0.0), (vx, vy), 30, misses, 0.9, "slow_progressive", 11.0, 30.0,
                                   position_px=(x, y), velocity_px_s=v_px, detection=0 if misses == 0 else None)
                heads = [HeadDetection((x, y), 0.0, 400.0, 0.9, 1.6)] if misses == 0 else []
                est = Estimate(1, now, now, {}, heads, [track], 7, (x, y) if misses == 0 else None, (x, y), None,
                               None, TipEstimate((1165.0, 600.0), 0.9), None)
                try:
                    ctl.step(est)
                except SafetyError:
                    break  # refused before any motion (whether step() should raise it is the controller's business)
                if ctl.done:
                    break
        finally:
            ctl.abort("example over")
        assert all(guard.lowest_path_z_um(s, t) >= rig.safety.tip_floor_um - 1e-6 for s, t in commands[first:])

    try:
        example()
    finally:
        rig.manipulator._start_move = start_move
    lab_z = [cal.manip_tf.to_lab(t)[2] for _, t in commands]
    assert len(commands) >= 40 and min(lab_z) == pytest.approx(rig.safety.tip_floor_um, abs=1e-6)
