"""Monocular depth as fine-grained classification (9 classes, -2..+2 um) on torchvision backbones.

FGAF sits on the backbone's last feature map, before global pooling; CrossNorm (train only) and
SelfNorm act on an early feature map. Grey input: the first convolution takes one channel. All weights
start from scratch (no downloads).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision.models as tvm

from perception.models.fgaf import FGAF, CrossNorm, SelfNorm
from perception.models.registry import register_model

BACKBONES = {
    "resnet18": (tvm.resnet18, 512), "resnet34": (tvm.resnet34, 512), "resnet50": (tvm.resnet50, 2048),
    "mobilenet_v2": (tvm.mobilenet_v2, 1280),
    "shufflenet_v2_x0_5": (tvm.shufflenet_v2_x0_5, 1024), "shufflenet_v2_x1_0": (tvm.shufflenet_v2_x1_0, 1024),
    "shufflenet_v2_x1_5": (tvm.shufflenet_v2_x1_5, 1024), "shufflenet_v2_x2_0": (tvm.shufflenet_v2_x2_0, 2048),
    "googlenet": (tvm.googlenet, 1024),
}


def _grey_first_conv(conv: nn.Conv2d) -> nn.Conv2d:
    return nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)


class DepthClassifier(nn.Module):
    """stem -> [CrossNorm, SelfNorm] -> body -> [FGAF] -> pool -> dropout -> linear(num_classes)."""

    def __init__(self, backbone: str = "mobilenet_v2", num_classes: int = 9, fgaf: bool = True,
                 use_fg: bool = True, use_af: bool = True, crossnorm: bool = True, selfnorm: bool = True,
                 dropout: float = 0.2, fgaf_channels: int | None = None) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r} (known: {', '.join(BACKBONES)})")
        ctor, channels = BACKBONES[backbone]
        kwargs = {"aux_logits": False, "init_weights": True} if backbone == "googlenet" else {}
        net = ctor(weights=None, **kwargs)
        self.stem, stem_channels, self.body = self._split(backbone, net)
        self.crossnorm = CrossNorm() if crossnorm else nn.Identity()
        self.selfnorm = SelfNorm(stem_channels) if selfnorm else nn.Identity()
        reduce = fgaf_channels or (512 if channels > 1024 else channels // 2 if channels > 512 else channels)
        self.neck = nn.Identity()
        if fgaf:
            self.neck = nn.Sequential(
                nn.Conv2d(channels, reduce, 1, bias=False), nn.BatchNorm2d(reduce), nn.ReLU(inplace=True),
                FGAF(reduce, use_fg=use_fg, use_af=use_af)) if reduce != channels else FGAF(channels, use_fg, use_af)
            channels = reduce
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(channels, num_classes))

    @staticmethod
    def _split(name: str, net: nn.Module) -> tuple[nn.Module, int, nn.Module]:
        if name.startswith("resnet"):
            net.conv1 = _grey_first_conv(net.conv1)
            stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            return stem, 64, nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4)
        if name == "mobilenet_v2":
            first = net.features[0]
            first[0] = _grey_first_conv(first[0])
            return nn.Sequential(net.features[:2]), 16, nn.Sequential(net.features[2:])
        if name.startswith("shufflenet"):
            net.conv1[0] = _grey_first_conv(net.conv1[0])
            return nn.Sequential(net.conv1, net.maxpool), net.conv1[0].out_channels, nn.Sequential(
                net.stage2, net.stage3, net.stage4, net.conv5)
        if name == "googlenet":
            net.conv1.conv = _grey_first_conv(net.conv1.conv)
            stem = nn.Sequential(net.conv1, net.maxpool1, net.conv2, net.conv3, net.maxpool2)
            body = nn.Sequential(net.inception3a, net.inception3b, net.maxpool3, net.inception4a, net.inception4b,
                                 net.inception4c, net.inception4d, net.inception4e, net.maxpool4,
                                 net.inception5a, net.inception5b)
            return stem, 192, body
        raise ValueError(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.selfnorm(self.crossnorm(self.stem(x)))
        return self.head(self.neck(self.body(x)))


@register_model("depth_classifier")
def depth_classifier(**kwargs) -> DepthClassifier:
    return DepthClassifier(**kwargs)
