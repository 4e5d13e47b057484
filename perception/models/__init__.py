"""Model registry: every architecture registers a builder; ``build_model(config)`` makes any of them."""

from perception.models.registry import MODELS, build_model, register_model

# Importing the architecture modules registers them.
from perception.models import depth_net, otmr_nets, unext  # noqa: E402,F401

__all__ = ["MODELS", "build_model", "register_model"]
