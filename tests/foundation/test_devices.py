import numpy as np
import pytest

from drivers.errors import DeviceError, FrameError, LimitError
from drivers.frame import Frame


def test_limits_checked_before_any_motion(sim_rig):
    stage = sim_rig.stage
    before = stage.position_um()
    with pytest.raises(LimitError, match=r"x=60000.00 um outside limits"):
        stage.move_to_um(60000, 0)
    with pytest.raises(LimitError, match="exceeds the limit"):
        stage.move_to_um(10, 0, speed_um_s=1e6)
    with pytest.raises(LimitError, match="not finite"):
        sim_rig.focus.move_to_um(float("nan"))
    with pytest.raises(LimitError, match="3 coordinates"):
        sim_rig.manipulator.move_to_um([1, 2])
    sim_rig.clock.sleep(1.0)
    assert not stage.is_moving()
    assert stage.position_um() == pytest.approx(before, abs=0.1)


def test_move_handle_waits_and_stop_in_flight_raises(sim_rig):
    m = sim_rig.manipulator
    m.guard = None  # the device's own mechanics: a 1 mm move is outside the application's tip workspace
    start = m.position_um()
    m.move_to_um(start + [100, 0, 0], speed_um_s=500).wait(5)
    assert m.position_um() == pytest.approx(start + [100, 0, 0], abs=0.06)
    handle = m.move_to_um(start + [1000, 0, 0], speed_um_s=100)
    sim_rig.clock.sleep(0.5)
    handle.stop()
    with pytest.raises(DeviceError, match="stopped before reaching the target"):
        handle.wait(5)
    mid = m.position_um()[0] - start[0]
    assert 120 < mid < 180  # from +100 um, stopped about 0.5 s into a 100 um/s move


def test_move_timeout_stops_device(sim_rig):
    handle = sim_rig.stage.move_by_um(5000, 0, speed_um_s=100)
    with pytest.raises(DeviceError, match="stage: move_to_um: timed out after 1 s"):
        handle.wait(1.0)
    assert not sim_rig.stage.is_moving()


def test_pump_rates_validated_and_volume_integrates(sim_rig):
    pump = sim_rig.pump
    with pytest.raises(LimitError):
        pump.aspirate(0)
    with pytest.raises(LimitError):
        pump.aspirate(1000)
    pump.aspirate(1.2)
    sim_rig.clock.sleep(2.0)
    pump.stop()
    sim_rig.clock.sleep(1.0)
    assert pump.rate_nl_s() == 0
    assert pump.volume_nl() == pytest.approx(1.2 * 2.0, abs=0.1)


def test_frames_are_stamped_with_rig_state(sim_rig):
    sim_rig.stage.move_to_um(50, -20).wait(5)
    frame = sim_rig.frames.snap()
    assert frame.stage_xy_um == pytest.approx((50, -20), abs=0.1)
    assert frame.pixel_size_um == pytest.approx(0.1465)
    assert frame.pixels.shape == (1200, 1920) and frame.pixels.dtype == np.uint8
    second = sim_rig.frames.snap()
    assert second.frame_id == frame.frame_id + 1
    assert second.capture_time_s - frame.capture_time_s == pytest.approx(1 / 40, abs=1e-6)


@pytest.mark.parametrize(
    "pixels, text",
    [
        (np.zeros((10, 10, 3), np.uint8), "2-D"),
        (np.zeros((64, 64), np.int64), "dtype"),
        (np.full((64, 64), np.nan, np.float32), "NaN"),
        ([[1, 2]], "numpy array"),
    ],
)
def test_corrupt_frames_rejected_with_clear_error(pixels, text):
    with pytest.raises(FrameError, match=text):
        Frame(pixels, 1, 0.0, 0.1465, (0, 0), 0, 4.0)
