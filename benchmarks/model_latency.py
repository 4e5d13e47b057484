"""Batch-1 latency of every shipped model, with parameters and MACs: on the CPU torch eager vs onnxruntime;
on a GPU (`--device cuda`) torch fp32 vs fp16 channels-last, eager and as the runtime replays it (a CUDA
graph). Each call's time includes the copy to the device and the result's copy back, as in the runtime.

    .venv/bin/python benchmarks/model_latency.py [--repeat 200] [--device cpu|cuda]
        [--extra resnet34,resnet50]   # also the paper's FGAF depth nets (untrained: latency only)

Saves ``docs/results/model_latency.json`` (CPU) or ``model_latency_cuda.json`` (GPU).
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
from result_store import Headline, Result, Table, save_result

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


def cuda_fp32(model: torch.nn.Module):
    model = model.to("cuda")

    @torch.inference_mode()
    def call(x: np.ndarray):
        out = model(torch.from_numpy(x).to("cuda"))
        return {k: v.cpu() for k, v in out.items()} if isinstance(out, dict) else out.cpu()
    return call


def models(extra: list[str]):
    """(name, task, model in eval mode): the shipped weights, then untrained FGAF depth nets on `extra`."""
    for path in sorted(WEIGHTS_DIR.glob("*.pt")):
        ckpt = load_weights(path)
        model = build_model(ckpt["model_config"])
        model.load_state_dict(ckpt["state_dict"])
        yield path.stem, ckpt["task"], model.eval()
    for backbone in extra:
        yield f"{backbone} + FGAF (untrained)", "depth", build_model(
            {"name": "depth_classifier", "backbone": backbone}).eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--extra", default="", help="backbones of FGAF depth nets to time besides the shipped models")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gpu = args.device == "cuda"
    if gpu:
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    timed = (["torch fp32 ms", "torch fp16 channels-last ms", "same + CUDA graph ms (runtime)"] if gpu else
             ["torch eager ms", "onnxruntime ms (runtime)"])
    columns = ["model", "task", "input", "params (M)", "MACs (G)", *timed] + ([] if gpu else ["goal"])
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    rows, data = [], {}
    for name, task, model in models([b for b in args.extra.split(",") if b]):
        shape = SHAPES[task]
        x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
        if gpu:
            times = [median_ms(cuda_fp32(model), x, args.repeat),
                     median_ms(TorchBackend(model, "cuda", cuda_graphs=False), x, args.repeat),
                     median_ms(TorchBackend(model, "cuda"), x, args.repeat)]
        else:
            with tempfile.TemporaryDirectory() as tmp:
                onnx = OnnxBackend(export_onnx(model, shape, Path(tmp) / "m.onnx"), threads=args.threads)
                times = [median_ms(TorchBackend(model, "cpu"), x, args.repeat), median_ms(onnx, x, args.repeat)]
        params_m, macs_g = count_parameters(model) / 1e6, count_macs(model, shape) / 1e9
        row = [name, task, f"{shape[1]}x{shape[2]}", f"{params_m:.2f}", f"{macs_g:.3f}", *(f"{t:.2f}" for t in times)]
        rows.append(row + ([] if gpu else [GOALS.get(task, "-")]))
        data[name] = {"task": task, "params_m": params_m, "macs_g": macs_g, **dict(zip(timed, times))}
        print("| " + " | ".join(rows[-1]) + " |", flush=True)
    runtime = timed[-1]
    where = f"on {torch.cuda.get_device_name()}" if gpu else f"on the CPU, {args.threads} threads"
    notes = (f"Batch 1, median of {args.repeat} calls {where}; each call includes the copy to the device and "
             "the result's copy back, as in the runtime.")
    headline = []
    if "depth_classifier" in data and "unext_seg" in data:
        ms = f"{data['depth_classifier'][runtime]:.2f} / {data['unext_seg'][runtime]:.2f} ms"
        headline = [Headline(f"latency, depth net 96x96 / UNeXt 256x256 ({'torch fp16 + CUDA graph' if gpu else 'onnxruntime'})",
                             ms, "-" if gpu else "<= 3 / <= 10 ms")]
    save_result(Result(
        name="model_latency_cuda" if gpu else "model_latency", section="perception models", order=20 if gpu else 10,
        title=f"Batch-1 latency of the shipped models ({'GPU' if gpu else 'CPU'})",
        tables=[Table("", columns, rows, notes)], headlines=headline,
        data={"repeat": args.repeat, "threads": args.threads, "models": data}))


if __name__ == "__main__":
    main()
