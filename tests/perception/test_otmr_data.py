import pytest

from drivers.errors import ConfigError
from perception.data.otmr import load_otmr, pose_vocab, stratified_split


def make_layout(root, sep="_"):
    import cv2
    import numpy as np

    for pitch, roll in ((0, 0), (30, 15)):
        d = root / f"P{pitch}_R{roll}"
        d.mkdir()
        lines = []
        for i in (3, 1, 2, 5, 4):
            name = f"video_P{pitch}_R{roll}_{i:05d}.jpg"
            cv2.imwrite(str(d / name), np.full((32, 32), 100 + i, np.uint8))
            lines.append(repr((name, 0.1 * i + pitch / 100)))
        (d / f"P{pitch}_R{roll}{sep}depth.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("sep", ["_", "-"])
def test_loader_joins_depths_on_file_name(tmp_path, sep):
    make_layout(tmp_path, sep)
    samples = load_otmr(tmp_path)
    assert len(samples) == 10
    s = next(x for x in samples if x.path.name.endswith("_00002.jpg") and x.pitch_deg == 30)
    assert s.roll_deg == 15 and s.depth == pytest.approx(0.5)
    splits = stratified_split(samples, (0.6, 0.2, 0.2))
    for name in ("train", "val", "test"):
        assert {(x.pitch_deg, x.roll_deg) for x in splits[name]} == {(0, 0), (30, 15)}


def test_loader_errors_name_the_file(tmp_path):
    make_layout(tmp_path)
    (tmp_path / "P0_R0" / "P0_R0_depth.txt").write_text("not a tuple\n")
    with pytest.raises(ConfigError, match=r"P0_R0_depth.txt:1: expected a tuple"):
        load_otmr(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_otmr(tmp_path / "nope")


def test_real_subset_structure(shared_dir):
    samples = load_otmr(shared_dir / "data" / "otmr_2025")
    pitches, rolls, poses = pose_vocab(samples)
    assert len(samples) == 1600 and len(poses) == 40
    assert pitches[0] == 0 and pitches[-1] == 90 and rolls[-1] == 60
