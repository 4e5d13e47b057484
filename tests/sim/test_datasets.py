import csv

import cv2
import numpy as np

from sim.datasets import DEPTHS_UM, DepthDatasetSpec, depth_folder, generate_depth_dataset, generate_seg_dataset


def test_depth_folders_and_manifest(tmp_path):
    manifest = generate_depth_dataset(DepthDatasetSpec(n_sperm=6, seed=1), tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert names == sorted(depth_folder(d) for d in DEPTHS_UM)
    assert "+0.0" in names and "-2.0" in names and "+2.0" in names
    with manifest.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 54
    splits = {}
    for row in rows:
        splits.setdefault(row["sperm_id"], set()).add(row["split"])
        img = cv2.imread(str(tmp_path / row["file"]), cv2.IMREAD_GRAYSCALE)
        assert img.shape == (96, 96)
    assert all(len(s) == 1 for s in splits.values())  # split by sperm, never by image


def test_crops_differ_across_depth(tmp_path):
    generate_depth_dataset(DepthDatasetSpec(n_sperm=1, seed=2, neighbours=False), tmp_path)
    imgs = {d: cv2.imread(str(next((tmp_path / depth_folder(d)).glob("*.png"))), 0).astype(float) for d in DEPTHS_UM}
    centre = {d: imgs[d][40:56, 40:56].mean() - np.median(imgs[d]) for d in DEPTHS_UM}
    assert np.sign(centre[-1.0]) != np.sign(centre[1.0])


def test_seg_tiles_have_labels(tmp_path):
    generate_seg_dataset(4, 0, tmp_path)
    masks = [cv2.imread(str(p), 0) for p in sorted((tmp_path / "masks").glob("*.png"))]
    assert len(masks) == 4
    assert any((m == 1).any() for m in masks) and any((m == 2).any() for m in masks)
