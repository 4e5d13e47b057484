"""The pipette's sink flow aspirates cells that share its depth; depth errors fail as in the paper."""

from collections import Counter

from sim.config import Motility
from sim.flow import lagged_flow
from sim.scenarios import Outcome, aspiration_attempt, flow_speed_um_s


def test_aligned_aspiration_succeeds_far_more_often_than_3um_apart():
    n = 30
    aligned = Counter(aspiration_attempt(s, 0.0).outcome for s in range(n))
    apart = Counter(aspiration_attempt(s, 3.0).outcome for s in range(n))
    ok_aligned, ok_apart = aligned[Outcome.SUCCESS] / n, apart[Outcome.SUCCESS] / n
    assert ok_aligned >= 0.9
    assert ok_aligned - ok_apart >= 0.2
    assert apart[Outcome.PASSED_BENEATH] >= 3  # the paper's depth failure mode


def test_pump_draws_in_an_immotile_cell_and_nothing_moves_it_without():
    with_pump = [aspiration_attempt(s, 0.0, motility=Motility.IMMOTILE, start_distance_um=8.0) for s in range(5)]
    without = [aspiration_attempt(s, 0.0, motility=Motility.IMMOTILE, start_distance_um=8.0, pump_rate_nl_s=0.0)
               for s in range(5)]
    assert all(r.outcome == Outcome.SUCCESS for r in with_pump)
    assert not any(r.outcome == Outcome.SUCCESS for r in without)


def test_sink_flow_falls_with_inverse_square_distance():
    assert flow_speed_um_s(20, 1.2) / flow_speed_um_s(10, 1.2) == 0.25
    assert flow_speed_um_s(1.0, 1.2) == flow_speed_um_s(3.0, 1.2)  # floored at the inner radius


def test_line_compliance_lags_the_pump():
    q = 0.0
    for _ in range(10):
        q = lagged_flow(q, 1.0, 0.025, 0.25)
    assert 0.6 < q < 0.65  # one time constant: 1 - 1/e
