import numpy as np
import pytest
import torch

from drivers.errors import ConfigError
from perception.models import build_model
from perception.models.depth_net import BACKBONES, DepthClassifier
from perception.models.fgaf import FGAF, CrossNorm, SelfNorm, WLoss
from perception.models.flops import count_macs
from perception.models.registry import count_parameters
from perception.models.unext import UNeXt


def test_unext_matches_published_size():
    m = UNeXt(in_channels=3, num_classes=1)
    assert count_parameters(m) == pytest.approx(1.47e6, rel=0.01)
    assert count_macs(m, (3, 256, 256)) == pytest.approx(0.57e9, rel=0.03)
    grey = build_model({"name": "unext", "in_channels": 1, "num_classes": 4})
    assert grey(torch.zeros(1, 1, 256, 256)).shape == (1, 4, 256, 256)


def test_registry_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown model 'unet3000'"):
        build_model({"name": "unet3000"})
    with pytest.raises(ConfigError, match="bad parameters"):
        build_model({"name": "unext", "colour": True})


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v2", "shufflenet_v2_x0_5", "googlenet"])
def test_depth_classifier_with_and_without_fgaf(backbone):
    plain = DepthClassifier(backbone, fgaf=False, crossnorm=False, selfnorm=False).eval()
    fgaf = DepthClassifier(backbone).eval()
    x = torch.randn(2, 1, 96, 96)
    assert plain(x).shape == fgaf(x).shape == (2, 9)
    extra = count_parameters(fgaf) - count_parameters(plain)
    assert 0.5e6 < extra < 2.5e6  # the paper: +1.8 M on ResNet-18, +1.1 M on MobileNetV2


def test_fgaf_preserves_shape_and_backbones_listed():
    assert len(BACKBONES) == 9
    assert FGAF(64)(torch.randn(2, 64, 6, 6)).shape == (2, 64, 6, 6)


def test_crossnorm_only_in_training_and_exchanges_statistics():
    cn = CrossNorm(p=1.0)
    x = torch.randn(4, 8, 5, 5) * torch.arange(1, 5).float()[:, None, None, None]
    cn.eval()
    assert torch.equal(cn(x), x)
    cn.train()
    torch.manual_seed(0)
    y = cn(x)
    std_in = x.std(dim=(2, 3)).mean(1)
    std_out = y.std(dim=(2, 3)).mean(1)
    assert sorted(std_in.tolist()) == pytest.approx(sorted(std_out.tolist()), rel=0.05)  # permuted, not lost


def test_selfnorm_runs_in_eval_and_is_learnable():
    sn = SelfNorm(8).eval()
    x = torch.randn(2, 8, 5, 5)
    y = sn(x)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert sum(p.numel() for p in sn.parameters()) == 2 * (8 * 2 + 8)


def test_wloss_weights_far_mistakes_more():
    logits_near = torch.full((1, 9), -5.0)
    logits_near[0, 5] = 5.0  # true 4, predicted 5
    logits_far = torch.full((1, 9), -5.0)
    logits_far[0, 8] = 5.0  # true 4, predicted 8
    target = torch.tensor([4])
    ce_near = torch.nn.functional.cross_entropy(logits_near, target)
    ce_far = torch.nn.functional.cross_entropy(logits_far, target)
    assert ce_near == pytest.approx(ce_far.item())
    wl = WLoss()
    # a batch mixing a right and a wrong answer: the far mistake dominates more
    right = torch.full((1, 9), -5.0)
    right[0, 4] = 5.0
    near = wl(torch.cat([right, logits_near]), torch.tensor([4, 4]))
    far = wl(torch.cat([right, logits_far]), torch.tensor([4, 4]))
    assert far > near


def test_onnx_parity_with_torch(tmp_path):
    from perception.runtime.backend import OnnxBackend, TorchBackend, export_onnx

    rng = np.random.default_rng(0)
    depth = DepthClassifier("mobilenet_v2").eval()
    onnx = OnnxBackend(export_onnx(depth, (1, 96, 96), tmp_path / "depth.onnx"))
    for batch in (1, 7):  # any number of crops
        x = rng.standard_normal((batch, 1, 96, 96)).astype(np.float32)
        assert np.abs(onnx(x) - TorchBackend(depth, "cpu")(x)).max() < 1e-4
    # segmentation: one region of any size (multiples of 16)
    seg = UNeXt(1, 4).eval()
    onnx = OnnxBackend(export_onnx(seg, (1, 256, 256), tmp_path / "seg.onnx"))
    for shape in ((256, 256), (192, 320)):
        x = rng.standard_normal((1, 1, *shape)).astype(np.float32)
        assert np.abs(onnx(x) - TorchBackend(seg, "cpu")(x)).max() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on the CI machine)")
def test_cuda_graph_replay_matches_eager_for_every_batch_size():
    from perception.runtime.backend import TorchBackend

    for model, shape in ((DepthClassifier("shufflenet_v2_x1_0").eval(), (1, 96, 96)),
                         (UNeXt(1, 4).eval(), (1, 256, 256))):
        graphs = TorchBackend(model, "cuda")
        eager = TorchBackend(model, "cuda", cuda_graphs=False)
        rng = np.random.default_rng(0)
        for batch in (3, 1, 3):  # a shape seen before replays its graph with new input
            x = rng.standard_normal((batch, *shape)).astype(np.float32)
            assert np.abs(graphs(x) - eager(x)).max() < 1e-2
        assert graphs.cuda_graphs and len(graphs._graphs) == 2


def test_an_onnx_export_older_than_the_model_code_is_redone(tmp_path):
    """The export sits next to the weights: a change of the network's code (same weights) must not leave
    the runtime on a graph exported from the old code."""
    import inspect
    import os
    import shutil
    from pathlib import Path

    from perception.runtime import backend

    weights = Path(shutil.copy(Path(backend.__file__).parents[1] / "weights" / "unext_seg.pt", tmp_path))
    backend.load_backend(weights, "onnx", (1, 64, 64))
    onnx = tmp_path / "unext_seg.onnx"
    code = Path(inspect.getsourcefile(UNeXt))
    os.utime(onnx, (code.stat().st_mtime - 10, code.stat().st_mtime - 10))
    os.utime(weights, (0, 0))  # the weights are older than the export: only the code is newer
    backend.load_backend(weights, "onnx", (1, 64, 64))
    assert onnx.stat().st_mtime > code.stat().st_mtime - 10
