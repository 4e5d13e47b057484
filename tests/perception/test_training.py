"""Training end to end on tiny data: checkpoints, resume, and DDP with two gloo processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from perception.training.config import TrainConfig
from perception.training.loop import train
from sim.datasets import DepthDatasetSpec, generate_depth_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth")
    generate_depth_dataset(DepthDatasetSpec(n_sperm=10, seed=3, splits=(0.6, 0.2, 0.2)), root)
    return root


def cfg(data, out, **kw):
    base = dict(task="depth", data=data, out=out, epochs=2, batch_size=16, image_px=96, patience=5,
                model={"name": "depth_classifier", "backbone": "shufflenet_v2_x0_5"}, loss="wloss")
    return TrainConfig(**{**base, **kw})


def test_train_writes_best_and_resumes(tiny_depth, tmp_path):
    metrics = train(cfg(tiny_depth, tmp_path / "run"), progress=False)
    assert {"top1", "top3", "mean_abs_error_um"} <= set(metrics)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)  # tensors and plain numbers only
    assert best["meta"]["depths_um"][0] == -2.0 and best["task"] == "depth"
    train(cfg(tiny_depth, tmp_path / "run", epochs=3), resume=True, progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny_depth, tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(json.dumps({"task": "depth", "data": str(tiny_depth), "out": str(tmp_path / "ddp"),
                                  "epochs": 1, "batch_size": 8,
                                  "model": {"name": "depth_classifier", "backbone": "shufflenet_v2_x0_5"}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29531", "-m", "app.cli", "train", "depth", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "ddp" / "best.pt").is_file()


def test_depth_crops_scale_jitter_magnifies_the_head(tiny_depth):
    """With scale_jitter the training crops show the same head larger or smaller (a head's absolute size is
    no depth cue); without it, augmentation keeps the size (the dark core's area is unchanged)."""
    import numpy as np

    from perception.training.datasets import DepthCrops

    def dark_area(ds, n=40):
        areas = []
        for _ in range(n):
            x, _ = ds[0]
            areas.append(float((x[0].numpy() < -1.5).sum()))
        return np.array(areas)

    plain = dark_area(DepthCrops(tiny_depth, "train", augment=True, seed=1))
    jittered = dark_area(DepthCrops(tiny_depth, "train", augment=True, seed=1, scale_jitter=(0.7, 1.45)))
    assert jittered.std() > 2 * plain.std()
    assert jittered.max() > 1.3 * np.median(plain)
