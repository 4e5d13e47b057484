"""Multiply-accumulates of one batch-1 forward pass, counted by torch's ``FlopCounterMode``."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of every convolution and matrix product in eval mode (the counter's flops / 2: it counts a
    multiply and an add per MAC)."""
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    with torch.no_grad(), counter:
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    return counter.get_total_flops() // 2
