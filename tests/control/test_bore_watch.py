"""A head drawn up the bore, told from sightings that stay put or start deep."""

import numpy as np
import pytest

from control.bore_watch import DrawnInWatch
from perception.runtime.estimate import BoreSighting


def _feed(watch: DrawnInWatch, frames: list[list[float]]) -> list:
    return [watch.update(tuple(BoreSighting(a, 6.0) for a in f)) for f in frames]


def test_a_head_advancing_from_the_opening_at_the_flows_pace_is_drawn_in_on_its_fourth_frame():
    out = _feed(DrawnInWatch(), [[7.0], [8.1], [9.0], [10.2], [11.3]])
    assert out[:3] == [None, None, None]
    assert out[3] is not None and out[3].frames == 4 and out[3].last_um == pytest.approx(10.2)


def test_a_missed_frame_and_a_second_sighting_do_not_break_the_chain():
    out = _feed(DrawnInWatch(), [[7.0, 25.0], [], [9.1, 24.5], [10.0], [11.2, 3.0]])
    assert out[-1] is not None and out[-1].first_um == pytest.approx(7.0)


@pytest.mark.parametrize("frames", [
    [[16.5 + j] for j in np.random.default_rng(0).uniform(-0.6, 0.6, 40)],  # a head beside the glass, seen through it
    [[9.0 + j] for j in np.random.default_rng(1).uniform(-0.6, 0.6, 40)],  # the same, near the opening
    [[20.0 + i] for i in range(10)],  # a cell already deep in the bore when the pump started
    [[11.0 - i] for i in range(5)],  # a head swimming back down and out
    [[7.0], [], [], [], [10.0], [11.0], [12.0]],  # sightings too far apart in time to be one head
])
def test_sightings_that_stay_put_start_deep_or_go_back_out_are_no_entry(frames):
    assert all(o is None for o in _feed(DrawnInWatch(), frames))


def test_a_sighting_there_before_the_pump_started_is_no_entry_however_it_moves_but_a_new_one_is():
    """Development seed 2, trial 36: a faint sighting at 11-14 um before the pump started (a tail across
    the bore), then read 10.7, 11.1, 12.6, 13.7 ... 17.5 um as its cell swam on beside the glass: taken for
    an entry, a false success. A head entering after the pump started, beneath it, still counts."""
    drift = [[10.7], [11.1], [12.6], [13.7], [14.6], [15.4], [16.2], [16.4], [16.7], [16.8], [17.3], [17.5]]
    watch = DrawnInWatch()
    watch.reset(before_um=(11.4, 11.8))
    assert all(o is None for o in _feed(watch, drift))
    watch.reset(before_um=(11.4, 11.8))
    out = _feed(watch, [[7.0] + f for f in drift[:1]] + [[8.1] + drift[1], [9.0] + drift[2], [10.2], [11.3]])
    assert out[3] is not None and out[3].first_um == pytest.approx(7.0)
