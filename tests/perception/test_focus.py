"""Depth from focus costs real time: one camera frame per plane, each after the focus drive has moved and
settled, and a frame at the starting plane before and after; a swimming cell gives no reading, a still one
does."""

import numpy as np

from perception.runtime.focus import WINDOW_KEPT_MIN, analyse_sweep, focus_sweep
from sim.devices.motion import LinearProfile


def _move_s(focus, dist_um: float) -> float:
    """How long the drive takes to arrive and settle after a command to move ``dist_um``."""
    ax = focus.axes
    profile = LinearProfile(np.zeros(1), np.array([dist_um]), focus.max_speed_um_s, ax.accel, 0.0, ax.latency_s)
    return ax.latency_s + profile.duration + ax.settle_s


def test_a_focus_sweep_takes_the_time_its_focus_moves_and_frames_take(sim_rig):
    from drivers.interfaces import Roi

    focus, frames, clock, camera = sim_rig.focus, sim_rig.frames, sim_rig.clock, sim_rig.camera
    camera.set_roi(Roi(896, 536, 128, 128))
    focus.move_to_um(5.0).wait(5)
    frames.snap()
    offsets = np.arange(-3.0, 3.01, 0.5)
    seen = []
    snap = frames.snap

    def counted_snap(*args, **kwargs):
        seen.append(snap(*args, **kwargs))
        return seen[-1]

    frames.snap = counted_snap
    t0 = clock.now()
    res = focus_sweep(focus, frames, offsets, (0, 0, 64, 64))
    elapsed = clock.now() - t0
    period = 1.0 / camera.frame_rate_hz
    readout = camera.s.latency_ms / 1000.0
    moves = [_move_s(focus, 3.0)] + [_move_s(focus, 0.5)] * (len(offsets) - 1) + [_move_s(focus, 3.0)]
    shots = len(offsets) + 2  # one frame per plane, and one at the start before and after
    # each plane: the drive arrives and settles, then a frame is exposed there and read out
    lower = sum(moves) + shots * readout
    poll = 0.005  # the host notices that a move has ended within one polling interval
    upper = lower + len(moves) * poll + shots * period
    assert lower <= elapsed <= upper, (lower, elapsed, upper)
    assert elapsed >= shots * period  # no faster than the camera's frame rate
    # one frame per plane, taken at that plane, between two at the start
    assert len(seen) == shots
    assert np.allclose([f.focus_z_um for f in seen], [5.0, *(5.0 + offsets), 5.0], atol=0.03)
    assert np.all(np.diff([f.capture_time_s for f in seen]) >= period - 1e-9)
    assert abs(focus.z_um() - 5.0) < 0.03 and np.allclose(res.z_um, 5.0 + offsets, atol=0.03)


def test_a_peak_at_the_end_of_the_sweep_is_no_reading():
    z = np.arange(-3.0, 3.01, 0.5)
    inside = analyse_sweep(z, np.exp(-((z - 0.4) ** 2)) + 0.1)
    at_edge = analyse_sweep(z, np.exp(-((z + 3.5) ** 2)) + 0.1)  # a cell that left the window, or a peak beyond
    assert inside.reliable and abs(inside.best_z_um - 0.4) < 0.15
    assert not at_edge.reliable


def test_a_sweep_over_a_swimming_cell_gives_no_reading(sim_rig):
    """The window stays where the cell was when the sweep began; the cell swims on and rolls, and the
    window after the sweep no longer shows what it showed before."""
    from drivers.interfaces import Roi
    from sim.config import Motility

    world = sim_rig.world
    sim_rig.camera.set_roi(Roi(896, 536, 128, 128))
    read = 0
    for cell in [c for c in world.scene.sperm if c.motility == Motility.RAPID][:4]:
        head = cell.head_center_um()
        sim_rig.stage.move_to_um(*head[:2]).wait(5)
        z_path = float(cell.path_pos_um[2])
        sim_rig.focus.move_to_um(z_path).wait(5)
        res = focus_sweep(sim_rig.focus, sim_rig.frames, np.arange(-3.0, 3.01, 0.5), (32, 32, 64, 64))
        assert res.window_kept < WINDOW_KEPT_MIN - 0.2, res.window_kept
        read += res.reliable
    assert read == 0


def test_a_sweep_over_a_still_cell_is_a_reading_near_its_depth(sim_rig):
    """An immotile head stays in the window: the window keeps its content and the peak lies about 1 um
    above the head's mid-plane, where the edge measures peak on the twin's heads (docs/sim.md)."""
    from drivers.interfaces import Roi
    from sim.config import Motility

    world = sim_rig.world
    sim_rig.camera.set_roi(Roi(896, 536, 128, 128))
    cells = [c for c in world.scene.sperm if c.motility == Motility.IMMOTILE][:4]
    assert len(cells) == 4
    for cell in cells:
        head = cell.head_center_um()
        sim_rig.stage.move_to_um(*head[:2]).wait(5)
        sim_rig.focus.move_to_um(float(cell.path_pos_um[2])).wait(5)
        res = focus_sweep(sim_rig.focus, sim_rig.frames, np.arange(-3.0, 3.01, 0.5), (32, 32, 64, 64))
        assert res.window_kept > WINDOW_KEPT_MIN + 0.2, res.window_kept
        assert res.reliable and abs(res.best_z_um - float(cell.path_pos_um[2]) - 1.0) < 0.6
