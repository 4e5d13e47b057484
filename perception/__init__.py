"""Perception: models (one file per architecture, built from configs), training, evaluation, runtime."""
