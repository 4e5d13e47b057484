"""OTMR zoo (Wei & Zhang 2025): optical-microrobot pose (pitch and roll heads, or one 40-class head)
and depth regression, on a small CNN or torchvision backbones, all from scratch with grey input."""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision.models as tvm

from perception.models.registry import register_model


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU-pool stages and dropout: the coursework baseline's family."""

    def __init__(self, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        layers, c_in = [], 1
        for i in range(5):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.out_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _backbone(name: str) -> tuple[nn.Module, int]:
    """A feature extractor returning (B, F) and F, with a one-channel stem."""
    if name == "small_cnn":
        net = SmallCNN()
        return net, net.out_features
    if name in ("resnet18", "resnet50"):
        net = getattr(tvm, name)(weights=None)
        net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        f = net.fc.in_features
        net.fc = nn.Identity()
        return net, f
    if name == "mobilenet_v2":
        net = tvm.mobilenet_v2(weights=None)
        net.features[0][0] = nn.Conv2d(1, 32, 3, 2, 1, bias=False)
        net.classifier = nn.Identity()
        return net, 1280
    if name == "efficientnet_b0":
        net = tvm.efficientnet_b0(weights=None)
        net.features[0][0] = nn.Conv2d(1, 32, 3, 2, 1, bias=False)
        net.classifier = nn.Identity()
        return net, 1280
    if name == "vit_b_16":
        net = tvm.vit_b_16(weights=None)
        net.conv_proj = nn.Conv2d(1, net.hidden_dim, 16, 16)
        net.heads = nn.Identity()
        return net, net.hidden_dim
    raise ValueError(f"unknown OTMR backbone {name!r}")


class OTMRPoseNet(nn.Module):
    """Pitch and roll classification heads; ``joint=True`` adds the single 40-pose head for comparison."""

    def __init__(self, backbone: str = "small_cnn", n_pitch: int = 19, n_roll: int = 7, n_pose: int = 40,
                 joint: bool = False) -> None:
        super().__init__()
        self.features, f = _backbone(backbone)
        self.pitch = nn.Linear(f, n_pitch)
        self.roll = nn.Linear(f, n_roll)
        self.pose = nn.Linear(f, n_pose) if joint else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.features(x)
        out = {"pitch": self.pitch(z), "roll": self.roll(z)}
        if self.pose is not None:
            out["pose"] = self.pose(z)
        return out


class OTMRDepthNet(nn.Module):
    """Depth regression (standardised target)."""

    def __init__(self, backbone: str = "small_cnn") -> None:
        super().__init__()
        self.features, f = _backbone(backbone)
        self.head = nn.Linear(f, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


@register_model("otmr_pose")
def otmr_pose(**kwargs) -> OTMRPoseNet:
    return OTMRPoseNet(**kwargs)


@register_model("otmr_depth")
def otmr_depth(**kwargs) -> OTMRDepthNet:
    return OTMRDepthNet(**kwargs)
