"""Datasets for training and evaluation: simulated sperm depth crops and segmentation tiles, OTMR."""
