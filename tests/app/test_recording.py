"""Recordings: OME-TIFF frames with per-frame stage, focus and tip, JSON lines of estimates and transitions;
read back by tifffile and by the replay camera's reader."""

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from app.recording import Recorder, RecorderError
from drivers.frame import Frame

ROOT = Path(__file__).resolve().parents[2]


def frame(i: int, shape=(48, 64)) -> Frame:
    pixels = np.full(shape, i % 256, np.uint8)
    pixels[0, 0] = 255 - i
    return Frame(pixels=pixels, frame_id=i, capture_time_s=10.0 + 0.025 * i, pixel_size_um=0.1465,
                 stage_xy_um=(5.0 * i, -2.0), focus_z_um=3.5 + 0.1 * i, exposure_ms=4.0, roi_offset_px=(640, 408))


def record(folder: Path, n: int, shapes=None) -> Path:
    with Recorder(folder, {"rig": "test"}, 0.1465) as rec:
        for i in range(n):
            rec.frame(frame(i, shapes(i) if shapes else (48, 64)), np.array([1.0, 2.0, 3.0 + i]),
                      np.array([30.0, 0.0, 12.0 + i]))
    return folder


def test_frames_and_their_metadata_round_trip(tmp_path):
    folder = record(tmp_path / "rec", 12)
    with tifffile.TiffFile(folder / "frames.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "TYX" and tif.series[0].shape == (12, 48, 64)
        images = tif.asarray()
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert all(images[i, 0, 0] == 255 - i and images[i, 1, 1] == i for i in range(12))
    assert pixels["PhysicalSizeX"] == pytest.approx(0.1465)
    planes = pixels["Plane"]
    assert [p["PositionX"] for p in planes] == pytest.approx([5.0 * i for i in range(12)])
    assert [p["PositionZ"] for p in planes] == pytest.approx([3.5 + 0.1 * i for i in range(12)])
    assert [p["DeltaT"] for p in planes] == pytest.approx([0.025 * i for i in range(12)])
    lines = [json.loads(x) for x in (folder / "frames.jsonl").read_text().splitlines()]
    assert [x["plane"] for x in lines] == list(range(12))
    assert lines[5]["tip_lab_um"] == [30.0, 0.0, 17.0] and lines[5]["roi_offset_px"] == [640, 408]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["frames"] == 12 and meta["frames_dropped"] == 0 and meta["error"] is None


def test_a_new_roi_starts_a_new_file(tmp_path):
    folder = record(tmp_path / "rec", 6, shapes=lambda i: (48, 64) if i < 4 else (32, 32))
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["files"] == ["frames.ome.tif", "frames-001.ome.tif"]
    with tifffile.TiffFile(folder / "frames-001.ome.tif") as tif:
        assert tif.series[0].shape == (2, 32, 32)


def test_a_folder_holding_a_recording_is_refused(tmp_path):
    record(tmp_path / "rec", 2)
    with pytest.raises(RecorderError, match="holds a recording already"):
        Recorder(tmp_path / "rec", {}, 0.1)


def test_the_replay_camera_reads_a_recording_back(tmp_path):
    recording = pytest.importorskip("drivers.recording", reason="the replay camera is not on this branch yet")
    folder = record(tmp_path / "rec", 10)
    with recording.open_recording(folder / "frames.ome.tif") as rec:
        assert len(rec) == 10 and rec.shape == (48, 64)
        assert all(rec.read(i)[0, 0] == 255 - i for i in range(10))


@pytest.mark.slow
def test_a_trial_is_recorded_with_its_estimates_and_transitions(tmp_path):
    from app.trials import TrialSpec, run_trial

    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data["control"] = {"trials": {"xy_source": "oracle", "max_trial_s": 4}}
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(data))
    result = run_trial(TrialSpec(0, 7, str(rig), "motile", "oracle", record=str(tmp_path / "rec")))
    folder = tmp_path / "rec" / "trial-0000"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["frames"] == result["frames"] and meta["seed"] == 7
    events = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["dst"] for e in events] == [e["dst"] for e in result["events"]]
    estimates = (folder / "estimates.jsonl").read_text().splitlines()
    assert len(estimates) == result["frames"]
    with tifffile.TiffFile(folder / "frames.ome.tif") as tif:
        assert tif.series[0].shape[0] == result["frames"]
