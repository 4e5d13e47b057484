"""Batch-1 latency of every shipped model on this CPU, torch eager vs onnxruntime, with parameters and MACs.

    .venv/bin/python benchmarks/model_latency.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from perception.models import build_model
from perception.models.flops import count_macs
from perception.models.registry import count_parameters
from perception.runtime.backend import OnnxBackend, TorchBackend, export_onnx
from perception.training.export import WEIGHTS_DIR, load_weights

SHAPES = {"depth": (1, 96, 96), "seg": (1, 256, 256), "otmr-pose": (1, 128, 128), "otmr-depth": (1, 128, 128)}
GOALS = {"depth": "<= 3 ms", "seg": "<= 10 ms"}


def median_ms(fn, x: np.ndarray, repeat: int) -> float:
    for _ in range(10):
        fn(x)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | task | input | params (M) | MACs (G) | torch eager ms | onnxruntime ms | goal |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(WEIGHTS_DIR.glob("*.pt")):
        ckpt = load_weights(path)
        model = build_model(ckpt["model_config"])
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        shape = SHAPES[ckpt["task"]]
        x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
        t_torch = median_ms(TorchBackend(model, "cpu"), x, args.repeat)
        with tempfile.TemporaryDirectory() as tmp:
            onnx = OnnxBackend(export_onnx(model, shape, Path(tmp) / "m.onnx"), threads=args.threads)
            t_onnx = median_ms(onnx, x, args.repeat)
        print(f"| {path.stem} | {ckpt['task']} | {shape[1]}x{shape[2]} | {count_parameters(model) / 1e6:.2f} | "
              f"{count_macs(model, shape) / 1e9:.3f} | {t_torch:.2f} | {t_onnx:.2f} | {GOALS.get(ckpt['task'], '-')} |")


if __name__ == "__main__":
    main()
