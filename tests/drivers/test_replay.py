"""Recordings (video, image folder, multi-page TIFF / OME-TIFF) read as grey frames and played as a camera
(``driver: replay``); rigs with only that camera run perception (GUI session, bench, trials)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import yaml

from app.config import load_rig_config
from app.rig import build_rig
from drivers.errors import ConfigError, DeviceError
from drivers.interfaces import Roi
from drivers.recording import RecordingError, open_recording

ROOT = Path(__file__).resolve().parents[2]
H, W = 527, 697  # odd on purpose


def clip(n: int = 5, shape: tuple[int, int] = (H, W)) -> list[np.ndarray]:
    """Frames that differ from each other (a bright square moves) over a noisy grey background."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        f = rng.normal(120, 4, shape).clip(0, 255).astype(np.uint8)
        f[20 + 10 * i : 40 + 10 * i, 30:50] = 250
        out.append(f)
    return out


def write_folder(folder: Path, frames: list[np.ndarray], suffix: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"img_{i:04d}{suffix}"), f)
    return folder


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h), isColor=True)
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def rig_file(tmp_path: Path, **camera) -> Path:
    data = {"name": "replay", "camera": {"driver": "replay", "um_per_px": 0.38, **camera},
            "control": {"trials": {"max_trial_s": 0.1}}}
    path = tmp_path / "replay.yaml"
    path.write_text(yaml.safe_dump({**data, "camera": {k: str(v) if isinstance(v, Path) else v
                                                       for k, v in data["camera"].items()}}))
    return path


# ----- reading recordings ----------------------------------------------------------------------------------
def test_image_folder_in_name_order_at_an_odd_size(tmp_path):
    frames = clip()
    rec = open_recording(write_folder(tmp_path / "f", frames[::-1]))  # img_0000 is the last frame (holds no file)
    assert (len(rec), rec.shape, rec.kind) == (5, (H, W), "images")
    assert np.array_equal(rec.read(0), frames[-1]) and rec.name(4) == "img_0004.png"
    assert [f.shape for f in rec.frames()] == [(H, W)] * 5


def test_colour_images_become_grey(tmp_path):
    f = np.zeros((20, 30, 3), np.uint8)
    f[..., 1] = 200  # pure green
    (tmp_path / "c").mkdir()
    cv2.imwrite(str(tmp_path / "c" / "a.png"), f)
    g = open_recording(tmp_path / "c").read(0)
    assert g.shape == (20, 30) and g.dtype == np.uint8 and abs(int(g[0, 0]) - round(0.587 * 200)) <= 1


def test_video_frames_rate_and_random_access(tmp_path):
    frames = clip(6)
    rec = open_recording(write_avi(tmp_path / "v.avi", frames, fps=25.0))
    # OpenCV's writer stores even sizes: the reader gives what the file holds
    cap = cv2.VideoCapture(str(tmp_path / "v.avi"))
    stored = cap.read()[1].shape[:2]
    cap.release()
    assert rec.kind == "video" and len(rec) == 6 and rec.shape == stored and rec.fps == pytest.approx(25.0)
    seq = list(rec.frames())
    assert len(seq) == 6 and seq[0].ndim == 2
    assert np.array_equal(rec.read(3), seq[3])  # a seek gives the same frame as sequential reading
    # the moving square (JPEG-compressed) is where it was drawn
    assert seq[2][45:55, 35:45].mean() > 200 and seq[0][45:55, 35:45].mean() < 160
    rec.close()


def test_multipage_tiff_and_ome_tiff(tmp_path):
    frames = clip(4)
    tifffile.imwrite(tmp_path / "s.tif", np.stack(frames), photometric="minisblack")
    with open_recording(tmp_path / "s.tif") as rec:
        assert (rec.kind, len(rec), rec.shape) == ("tiff", 4, (H, W))
        assert np.array_equal(rec.read(2), frames[2])
    stack16 = (np.stack(frames).astype(np.uint16) * 16)[:, None]  # Mono12 in 16 bits, T C Y X
    tifffile.imwrite(tmp_path / "s.ome.tif", stack16, metadata={"axes": "TCYX"}, ome=True)
    with open_recording(tmp_path / "s.ome.tif") as ome:
        assert len(ome) == 4 and ome.read(3).dtype == np.uint16 and np.array_equal(ome.read(3), stack16[3, 0])
    rgb = np.stack([np.repeat(f[..., None], 3, axis=2) for f in frames])
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    with open_recording(tmp_path / "rgb.tif") as rec:
        assert np.array_equal(rec.read(1), frames[1])
    tifffile.imwrite(tmp_path / "planes.tif", np.moveaxis(rgb[:1], -1, 1), photometric="rgb", planarconfig="separate")
    with open_recording(tmp_path / "planes.tif") as rec:
        assert np.array_equal(rec.read(0), frames[0])


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.avi", "no such file"),
    (lambda p: (p / "one.png").write_bytes(cv2.imencode(".png", np.zeros((9, 9), np.uint8))[1].tobytes()) and p / "one.png",
     "a single image"),
    (lambda p: (p / "x.xyz").write_text("?") and p / "x.xyz", "unsupported recording"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no images"),
    (lambda p: (p / "bad.avi").write_bytes(b"\0" * 4096) and p / "bad.avi", "cannot open|no readable frame"),
    (lambda p: (p / "bad.tif").write_bytes(b"II*\0garbage") and p / "bad.tif", "not a readable TIFF"),
])
def test_bad_recordings_raise_one_line(tmp_path, make, message):
    with pytest.raises(RecordingError, match=message) as err:
        open_recording(make(tmp_path))
    assert "\n" not in str(err.value)


def test_a_folder_of_mixed_sizes_names_the_odd_image(tmp_path):
    folder = write_folder(tmp_path / "f", clip(2))
    cv2.imwrite(str(folder / "img_0009.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(RecordingError, match="img_0009.png: 10x10 px"):
        list(open_recording(folder).frames())


# ----- the replay camera -----------------------------------------------------------------------------------
def test_replay_rig_with_only_a_camera_plays_the_recording_in_lockstep(tmp_path):
    frames = clip(3)
    path = rig_file(tmp_path, path=write_folder(tmp_path / "f", frames), frame_rate_hz=20)
    config = load_rig_config(path)
    assert config.perception_only and config.manipulator.driver == "none"
    config = config.model_copy(update={"clock": "lockstep"})
    with build_rig(config) as rig:
        assert rig.frames.pixel_size_um == pytest.approx(0.38) and rig.camera.sensor_shape == (H, W)
        shots = [rig.frames.snap() for _ in range(4)]
        assert [s.capture_time_s for s in shots] == pytest.approx([0.0, 0.05, 0.10, 0.15])
        assert np.array_equal(shots[1].pixels, frames[1]) and np.array_equal(shots[3].pixels, frames[0])  # loops
        assert shots[0].stage_xy_um == (0.0, 0.0) and shots[0].pixel_size_um == pytest.approx(0.38)
        rig.camera.set_roi(Roi(10, 20, 101, 33))
        crop = rig.camera.snap()
        assert crop.pixels.shape == (33, 101) and crop.roi_offset_px == (10, 20)
        assert np.array_equal(crop.pixels, frames[1][20:53, 10:111])
        with pytest.raises(DeviceError, match="no stage"):
            rig.stage.move_to_um(10, 0)
        with pytest.raises(DeviceError, match="no pump"):
            rig.pump.aspirate(1.2)
        with pytest.raises(DeviceError, match="no manipulator"):
            rig.manipulator.move_by_um([1, 0, 0])
        assert rig.pump.rate_nl_s() == 0.0


def test_a_relative_recording_path_is_taken_from_the_rig_files_folder(tmp_path, monkeypatch):
    write_folder(tmp_path / "rigs" / "clips" / "a", clip(2))
    rig = tmp_path / "rigs" / "r.yaml"
    rig.write_text(yaml.safe_dump({"name": "r", "camera": {"driver": "replay", "path": "clips/a", "um_per_px": 0.5,
                                                            "frame_rate_hz": 10}}))
    monkeypatch.chdir(tmp_path)
    assert load_rig_config(rig).device_settings("camera").path == tmp_path / "rigs" / "clips" / "a"


def test_replay_ends_cleanly_without_loop(tmp_path):
    path = rig_file(tmp_path, path=write_folder(tmp_path / "f", clip(2)), frame_rate_hz=50, loop=False)
    with build_rig(load_rig_config(path).model_copy(update={"clock": "lockstep"})) as rig:
        rig.camera.snap(), rig.camera.snap()
        with pytest.raises(DeviceError, match="end of the recording \\(2 frames\\)"):
            rig.camera.snap()
        assert rig.camera.ended


def test_replay_streams_in_real_time_and_stops_at_the_end(tmp_path):
    path = rig_file(tmp_path, path=write_folder(tmp_path / "f", clip(4)), frame_rate_hz=40, loop=False)
    with build_rig(load_rig_config(path)) as rig:
        got, done = [], threading.Event()
        rig.camera.image_ready.connect(lambda im: (got.append(im), len(got) == 4 and done.set()))
        rig.camera.start_streaming()
        assert done.wait(5.0)
        time.sleep(0.2)
        assert rig.camera.ended and len(got) == 4
        assert [g.frame_id for g in got] == [1, 2, 3, 4]
        rig.camera.stop_streaming()


def test_video_rate_is_the_default_and_folders_must_declare_one(tmp_path):
    video = write_avi(tmp_path / "v.avi", clip(2), fps=25.0)
    with build_rig(load_rig_config(rig_file(tmp_path, path=video))) as rig:
        assert rig.camera.frame_rate_hz == pytest.approx(25.0)
    folder = write_folder(tmp_path / "f", clip(2))
    with pytest.raises(ConfigError, match="frame_rate_hz: .* stores no frame rate"):
        build_rig(load_rig_config(rig_file(tmp_path, path=folder)))


def test_bad_replay_path_is_one_line_exit_2(tmp_path):
    path = rig_file(tmp_path, path=tmp_path / "nothing.mp4")
    proc = subprocess.run([sys.executable, "-m", "app.cli", "bench", "perception", "--rig", str(path), "--frames", "2"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "camera.path" in lines[0] and "nothing.mp4: no such file" in lines[0]


# ----- perception only: bench, trials, GUI session ---------------------------------------------------------
def test_bench_and_trials_run_perception_on_a_recording(tmp_path):
    from app.bench_perception import perception_benchmark
    from app.trials import format_table, run_campaign

    folder = write_folder(tmp_path / "f", clip(4, (131, 173)))
    rig = rig_file(tmp_path, path=folder, frame_rate_hz=20)
    result = perception_benchmark(rig, 4, None)
    assert result["roi_px"] == [173, 131] and result["camera_fps"] == 20
    assert result["processed"] + result["dropped_frames"] == 4
    assert result["seg_scale"] == pytest.approx(0.38 / result["seg_pixel_um"], rel=1e-3)  # to the network's pixel
    summary = run_campaign(rig, 1, 0, "motile", "net", tmp_path / "t.db", workers=1, progress=False)
    assert summary["perception_only"] and summary["n"] == 1 and summary["frames"] == 3  # at 0, 0.05 and 0.1 s (20 fps)
    assert "perception-only" in format_table(summary, "replay")


def test_gui_session_runs_perception_on_a_recording_and_starts_no_trial(tmp_path, qtbot):
    from app.gui.main_window import MainWindow
    from app.gui.session import LiveSession

    rig = rig_file(tmp_path, path=write_folder(tmp_path / "f", clip(3, (131, 173))), frame_rate_hz=20)
    session = LiveSession(rig)
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.show()
    session.start()
    try:
        qtbot.waitUntil(lambda: session.latest_estimate is not None and window.frames_shown >= 2, timeout=30000)
        assert session.perception_only and not window.start_button.isEnabled()
        assert "perception only" in window.statusBar().currentMessage()
        assert window.image.image.shape == (131, 173)
        session.start_trial()
        assert session.controller is None
    finally:
        window.close()


def test_replay_of_the_shared_real_video(shared_dir, tmp_path):
    frames = shared_dir / "data" / "sperm_video_real" / "train"
    rec = open_recording(frames)
    assert len(rec) == 152 and rec.shape == (384, 640) and rec.read(10).dtype == np.uint8
    assert rec.read(0).max() == 0 and rec.read(10).std() > 5  # the first frames are black
    path = rig_file(tmp_path, path=frames, frame_rate_hz=30, um_per_px=0.42)
    with build_rig(load_rig_config(path).model_copy(update={"clock": "lockstep"})) as rig:
        shot = [rig.frames.snap() for _ in range(11)][-1]
        assert np.array_equal(shot.pixels, rec.read(10)) and shot.pixel_size_um == pytest.approx(0.42)
