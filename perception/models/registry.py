"""A registry in the style of timm: names -> builders taking keyword parameters from a config."""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from drivers.errors import ConfigError

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = fn
        return fn

    return wrap


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build from ``{"name": ..., **params}``; unknown names or parameters are a ConfigError."""
    params = dict(config)
    name = params.pop("name", None)
    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    try:
        return MODELS[name](**params)
    except TypeError as exc:
        raise ConfigError(f"model: bad parameters for {name!r}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
