"""Count multiply-accumulates of convolutions and linear layers with forward hooks (batch 1)."""

from __future__ import annotations

import torch
import torch.nn as nn


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out.numel() * k

    def linear_hook(m: nn.Linear, inp, out) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
