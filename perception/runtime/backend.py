"""Inference backends: onnxruntime on CPU, torch (fp16 + channels-last on CUDA). The runtime picks the
fastest one present; both take and return numpy arrays so the pipeline does not care which runs."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.export import Dim

from perception.checkpoints import build_checked_model, load_weights, weights_path

log = logging.getLogger(__name__)
Prefer = Literal["auto", "torch", "onnx"]


class TorchBackend:
    """Torch inference; on CUDA in fp16, channels-last, replaying one CUDA graph per input shape. A batch-1
    call of these small networks is bound by kernel launches, not arithmetic (measured on an H100: the
    ShuffleNet depth net, 0.04 GMAC, took 6.3-7.5 ms eagerly and 1.1 ms as a graph). A graph is captured on
    the first call of each shape (the number of crops varies from frame to frame); a model that cannot be
    captured runs eagerly."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "auto", cuda_graphs: bool = True) -> None:
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.model = model.eval().to(self.device)
        self.half = self.device.type == "cuda"
        if self.half:
            self.model = self.model.half().to(memory_format=torch.channels_last)
        self.cuda_graphs = self.half and cuda_graphs
        self._graphs: dict[tuple[int, ...], tuple[torch.Tensor, torch.cuda.CUDAGraph, Any]] = {}

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        if self.half:
            t = t.half().contiguous(memory_format=torch.channels_last)
        out = self._replay(t) if self.cuda_graphs else self.model(t)
        if isinstance(out, dict):
            return {k: v.float().cpu().numpy() for k, v in out.items()}
        return out.float().cpu().numpy()

    def _replay(self, t: torch.Tensor) -> Any:
        entry = self._graphs.get(tuple(t.shape))
        if entry is None:
            try:
                entry = self._graphs[tuple(t.shape)] = self._capture(t)
            except RuntimeError as exc:
                log.warning("CUDA graph capture failed (%s); running the model eagerly", exc)
                self.cuda_graphs = False
                return self.model(t)
        static_in, graph, static_out = entry
        static_in.copy_(t)
        graph.replay()
        return static_out  # overwritten by the next replay: the caller copies it to the host first

    def _capture(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.CUDAGraph, Any]:
        static_in = t.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
            for _ in range(3):
                self.model(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return static_in, graph, static_out


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        # ORT's pool threads spin after each run by default: with two sessions (segmentation, depth) on a
        # 2-core machine they starve the frame and tracking threads (measured: 27-51 of 200 frames dropped
        # at 40 fps with spinning, 2-7 without; p99 latency 65-78 ms vs 48-54 ms).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: np.ndarray) -> Any:
        res = self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})
        return res[0] if len(res) == 1 else dict(zip(self.outputs, res))


def export_onnx(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> Path:
    """Export with torch's dynamo exporter (``torch.export``): a classifier or regressor takes any batch (the
    number of crops varies from frame to frame); a dense (segmentation) network takes one image of any height
    and width that are multiples of 16 (its four 2x poolings), as the runtime segments one region per frame.
    On the shipped models the graphs match torch within 1e-5 and run as fast in onnxruntime as those of the
    TorchScript exporter; exporting takes longer (seconds to a minute on 2 cores), once per weights and code."""
    model = model.eval().cpu()
    sample = torch.zeros(1, *input_shape)
    with torch.no_grad():
        out = model(sample)
    names = list(out) if isinstance(out, dict) else ["output"]
    dense = not isinstance(out, dict) and out.dim() == 4
    dims = ({2: 16 * Dim("height_16", min=1, max=256), 3: 16 * Dim("width_16", min=1, max=256)} if dense else
            {0: Dim("batch", min=1, max=4096)})
    program = torch.onnx.export(model, (sample,), dynamo=True, input_names=["input"], output_names=names,
                                dynamic_shapes=(dims,), verbose=False)
    # written beside and renamed into place: campaign worker processes may export the same model at once,
    # and none may read a half-written file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_backend(weights: str | Path, prefer: Prefer = "auto", input_shape: tuple[int, ...] | None = None,
                 cache_dir: Path | None = None, threads: int = 1, task: str | None = None) -> tuple[Any, dict]:
    """Load shipped or given weights (checked: ``perception.checkpoints``; ``task`` what they must be trained
    for); returns (backend, checkpoint metadata).

    ``auto`` uses torch on CUDA and onnxruntime on CPU (exported once next to the weights, or in
    ``cache_dir``), falling back to torch if the export fails; ``threads``: onnxruntime's intra-op threads.
    """
    ckpt = load_weights(weights, task)
    src = weights_path(weights)
    model = build_checked_model(ckpt, src)
    meta = {**ckpt["meta"], "task": ckpt["task"], "metrics": ckpt.get("metrics", {})}
    use_onnx = prefer == "onnx" or (prefer == "auto" and not torch.cuda.is_available())
    if use_onnx and input_shape is not None:
        folder = cache_dir or src.parent
        onnx_path = folder / f"{src.stem}.onnx"
        try:
            if not onnx_path.is_file() or onnx_path.stat().st_mtime < _newest_source_mtime(model, src):
                export_onnx(model, input_shape, onnx_path)
            return OnnxBackend(onnx_path, threads), meta
        except Exception as exc:  # an exotic op or a read-only folder: torch still works
            if prefer == "onnx":
                raise
            log.warning("onnx backend unavailable for %s (%s); using torch", weights, exc)
    return TorchBackend(model), meta


def _newest_source_mtime(model: torch.nn.Module, weights: Path) -> float:
    """When the weights or the code of any of the model's modules (ours or the library's) last changed: an
    export older than that is stale, since the code decides the exported graph even when the weights stay."""
    files = {Path(f) for m in model.modules() if (f := inspect.getsourcefile(type(m)))}
    return max([weights.stat().st_mtime] + [f.stat().st_mtime for f in files])


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)  # in place: a frame's class maps are a quarter-million values
    e /= e.sum(axis=axis, keepdims=True)
    return e
