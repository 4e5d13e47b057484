"""Capture at the pipette opening: a cell on the tip's axis is aspirated; one misaligned in z by about the
opening's radius or more passes beneath or over the pipette (the paper's depth failure)."""

import numpy as np

from sim.config import Motility, SceneConfig
from sim.flow import lagged_flow, sink_velocity
from sim.scenarios import Outcome, aspiration_attempt, capture_curve, flow_speed_um_s


def test_capture_curve_is_high_on_axis_and_falls_past_the_inner_radius():
    r_i = 0.5 * SceneConfig().pipette.inner_diameter_um
    curve = capture_curve([-(r_i + 2), -r_i, 0.0, r_i, r_i + 2], n=12, seed=3)
    ok = {dz: c[Outcome.SUCCESS.value] for dz, c in curve.items()}
    assert ok[0.0] >= 0.9
    assert min(ok[-r_i], ok[r_i]) >= 0.4  # at the radius the head still fits in part of the time
    assert max(ok[-(r_i + 2)], ok[r_i + 2]) <= 0.25  # two um beyond it, it passes by
    assert ok[0.0] > ok[r_i] > ok[r_i + 2] and ok[0.0] > ok[-r_i] > ok[-(r_i + 2)]
    far = curve[r_i + 2]
    assert far[Outcome.PASSED_BENEATH.value] >= 0.6  # not an escape: it swims past the misaligned tip


def test_pump_draws_in_an_immotile_cell_lying_on_the_floor_and_nothing_moves_it_without():
    floor_tip = 4.3 - 0.5  # the tip's axis at the safety floor, the head lying flat on the glass
    kw = dict(motility=Motility.IMMOTILE, cell_height_um=None, start_distance_um=8.0, pump_on_distance_um=20.0)
    with_pump = [aspiration_attempt(s, floor_tip, **kw) for s in range(5)]
    without = [aspiration_attempt(s, floor_tip, pump_rate_nl_s=0.0, **kw) for s in range(5)]
    assert all(r.outcome == Outcome.SUCCESS for r in with_pump)
    assert not any(r.outcome == Outcome.SUCCESS for r in without)


def test_sink_flow_falls_with_inverse_square_distance():
    assert flow_speed_um_s(20, 1.2) / flow_speed_um_s(10, 1.2) == 0.25
    assert flow_speed_um_s(1.0, 1.2) == flow_speed_um_s(3.0, 1.2)  # floored at the inner radius


def test_the_floor_turns_the_sink_flow_along_it():
    tip, axis = np.array([0.0, 0.0, 5.0]), np.array([1.0, 0.0, 0.0])
    on_floor = sink_velocity(np.array([[-6.0, 0.0, 0.0], [-6.0, 0.0, 10.0]]), tip, axis, 3.0, 4.0, 1200.0)
    assert abs(on_floor[0, 2]) < 1e-9 and on_floor[0, 0] > 0  # no flow through the floor, along it toward the tip
    behind_glass = sink_velocity(np.array([[5.0, 0.0, 10.0], [5.0, 0.0, 5.0]]), tip, axis, 3.0, 4.0, 1200.0)
    assert behind_glass[0, 0] < 0  # fluid reaches the opening from behind its plane too (thin-walled tube)
    assert behind_glass[1, 0] > 0  # inside the bore it flows up the pipette


def test_line_compliance_lags_the_pump():
    q = 0.0
    for _ in range(10):
        q = lagged_flow(q, 1.0, 0.025, 0.25)
    assert 0.6 < q < 0.65  # one time constant: 1 - 1/e
