"""The simulated devices behind the interfaces: determinism, ground truth, bad parameters."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from app.config import parse_rig_config
from app.rig import build_rig
from drivers.errors import ConfigError, LimitError
from drivers.interfaces import Roi

ROOT = Path(__file__).resolve().parents[2]


def rig_data(**scene) -> dict:
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data["scene"].update(scene)
    return data


def frames(seed: int, n: int = 3) -> list[np.ndarray]:
    with build_rig(parse_rig_config(rig_data()), seed=seed) as rig:
        rig.camera.set_roi(Roi(640, 360, 640, 480))
        rig.stage.move_by_um(20, 10).wait(5)
        rig.manipulator.move_by_um([-30, 0, -5]).wait(5)
        return [rig.frames.snap().pixels for _ in range(n)]


def test_same_seed_same_frames_bit_identical():
    a, b = frames(7), frames(7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = frames(8)
    assert not np.array_equal(a[0], c[0])


def test_frames_do_not_depend_on_side_jobs_running_on_a_thread():
    """Campaign workers render inline, the GUI on a worker thread: the frames must be the same."""
    from sim import workers

    threaded = frames(7)
    workers.set_threaded(False)
    try:
        inline = frames(7)
    finally:
        workers.set_threaded(True)
    assert all(np.array_equal(x, y) for x, y in zip(threaded, inline))


def test_ground_truth_follows_stage_and_pipette(sim_rig):
    f0 = sim_rig.frames.snap()
    sim_rig.stage.move_by_um(14.65, 0).wait(5)  # 100 px at 0.1465 um/px
    f1 = sim_rig.frames.snap()
    still = [s for s in f0.truth.sperm if s.motility.value == "immotile"]
    moved = {s.id: s for s in f1.truth.sperm}
    for s in still:
        assert moved[s.id].head_px[0] == pytest.approx(s.head_px[0] - 100, abs=3.0)  # Brownian motion of the still cells
    # the pipette hangs from the microscope: the stage does not move it in the image
    assert f1.truth.tip_px[0] == pytest.approx(f0.truth.tip_px[0], abs=0.5)
    sim_rig.manipulator.move_by_um([0, 0, -3]).wait(5)
    f2 = sim_rig.frames.snap()
    assert f2.truth.tip_depth_um == pytest.approx(f1.truth.tip_depth_um - 3, abs=0.06)


def test_masks_on_request(sim_rig):
    sim_rig.camera.with_masks = True
    frame = sim_rig.frames.snap()
    masks = frame.truth.masks
    assert masks.head.sum() > 0 and masks.flagellum.sum() > masks.head.sum() / 10
    assert masks.pipette.sum() > 1000


@pytest.mark.parametrize(
    "section, change, field",
    [
        ("camera", {"sensor_pixel_um": 0}, "camera.sensor_pixel_um"),
        ("objective", {"na": -0.65}, "objective.na"),
        ("scene", {"motility_mix": {"hyperactive": 1.0}}, "scene.motility_mix.hyperactive"),
    ],
)
def test_bad_sim_parameters_name_the_field(section, change, field):
    data = rig_data()
    data[section].update(change)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build_rig(parse_rig_config(data, source=Path("x.yaml")))


def test_camera_settings_validated(sim_rig):
    cam = sim_rig.camera
    with pytest.raises(LimitError, match="exposure"):
        cam.set_exposure_ms(5000)
    with pytest.raises(LimitError, match="does not fit"):
        cam.set_roi(Roi(1800, 0, 640, 480))
    cam.set_roi(Roi(0, 0, 640, 480))
    assert cam.snap().pixels.shape == (480, 640)


def test_streaming_camera_sends_the_next_image_at_once_when_a_render_overruns_the_frame_period():
    """A slow render (a busy CPU) costs the overrun, not the rest of the next frame period. Timed on a
    clock that moves only when the camera waits or renders, so the load of the machine does not count."""
    import threading

    from drivers.clock import LockstepClock

    class StreamClock(LockstepClock):  # simulated time, but streaming is allowed on it
        is_simulated = False

    clock = StreamClock()
    with build_rig(parse_rig_config(rig_data(n_sperm=2)), seed=3, clock=clock) as rig:
        cam = rig.camera
        cam.set_roi(Roi(640, 360, 128, 128))
        period = 1.0 / cam.frame_rate_hz
        render = cam.render_now

        def slow_render():  # the simulated camera's own render, taking 40% longer than the frame period
            clock.advance(1.4 * period)
            return render()

        cam.render_now = slow_render
        stamps: list[float] = []
        enough = threading.Event()

        def on_image(_image) -> None:
            stamps.append(clock.now())
            if len(stamps) >= 12:
                enough.set()

        cam.image_ready.connect(on_image)
        cam.start_streaming()
        assert enough.wait(60)
        cam.stop_streaming()
    gaps = np.diff(stamps[:12])
    assert gaps == pytest.approx(1.4 * period)  # waiting for the next slot gave 2 periods
    assert cam.frames_skipped >= 4  # 0.4 of a period overrun per image: a whole slot lost every 2.5 images
