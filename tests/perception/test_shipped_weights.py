"""The shipped models load offline and generalise to data generated with seeds they never saw."""

import shutil
import socket

import pytest
import torch

from perception.models import build_model
from perception.training.evaluate import evaluate
from perception.training.export import WEIGHTS_DIR, load_weights
from sim.datasets import DepthDatasetSpec, generate_depth_dataset
from sim.seg_dataset import generate_seg_dataset


def shipped(name: str) -> None:
    if not (WEIGHTS_DIR / f"{name}.pt").is_file():
        pytest.fail(f"shipped weights {name}.pt are missing (run `make weights`)")


def test_depth_classifier_on_unseen_seed(tmp_path):
    shipped("depth_classifier")
    generate_depth_dataset(DepthDatasetSpec(n_sperm=24, seed=4242), tmp_path)
    m = evaluate("depth", tmp_path, split="all")
    assert m["n"] == 216
    assert m["top1"] > 0.85 and m["top3"] > 0.97 and m["mean_abs_error_um"] < 0.15


def test_weights_are_offline_and_small(monkeypatch):
    """Every shipped model loads with the network cut (nothing downloaded) through torch.load(weights_only=True),
    is stored as fp16 (half the repository) and comes back in fp32, finite and matching its card (which must
    exist); all of them together stay under 30 MB."""
    from perception.checkpoints import read_checkpoint

    def no_network(*_args, **_kwargs):
        raise OSError("network access while loading shipped weights")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    paths = sorted(WEIGHTS_DIR.glob("*.pt"))
    assert {p.stem for p in paths} >= {"depth_classifier", "unext_seg", "otmr_pose", "otmr_depth"}
    for path in paths:
        stored = read_checkpoint(path)
        assert all(v.dtype == torch.float16 for v in stored["state_dict"].values() if v.is_floating_point())
        ckpt = load_weights(path)
        build_model(ckpt["model_config"]).load_state_dict(ckpt["state_dict"])  # strict: nothing missing
        floats = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float32 for v in floats), path.name
        assert (WEIGHTS_DIR / f"{path.stem}.md").is_file()
    assert sum(p.stat().st_size for p in paths) < 30e6


def test_weights_whose_card_names_another_model_are_refused(tmp_path):
    from perception.checkpoints import WeightsError

    shutil.copy(WEIGHTS_DIR / "depth_classifier.pt", tmp_path / "w.pt")
    card = (WEIGHTS_DIR / "depth_classifier.md").read_text().replace("shufflenet_v2_x1_0", "resnet50")
    (tmp_path / "w.md").write_text(card)
    with pytest.raises(WeightsError, match="but its card w.md says"):
        load_weights(tmp_path / "w.pt")


@pytest.mark.slow
def test_unext_segments_unseen_tiles(tmp_path):
    shipped("unext_seg")
    generate_seg_dataset(24, 4242, tmp_path)
    m = evaluate("seg", tmp_path, split="all")
    assert m["iou_head"] > 0.5 and m["iou_pipette"] > 0.7 and m["centroid_error_px"] < 3.0
