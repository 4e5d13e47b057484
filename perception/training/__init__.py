"""Training and evaluation of the perception models (CPU, one GPU, or DDP under torchrun)."""
