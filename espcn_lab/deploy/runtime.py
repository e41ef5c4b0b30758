"""Where and how the network runs: device, precision and backend choice, and the runners.

A runner maps ``(B, C, h, w) float32 in [0, 1]`` on the device to ``(B, C, h*s, w*s) float32``
(unclamped). Defaults pick the fastest backend that keeps fp32 quality on each device, measured by
``espcn-lab bench``: ONNX Runtime on CPU (~2-3x faster than PyTorch eager there), PyTorch fp16
channels-last with CUDA graphs on CUDA. ``triton`` (the fused kernel of ``triton_kernel``, CUDA only)
is chosen only by name.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable

import torch

from espcn_lab.deploy.onnx import ort_session
from espcn_lab.errors import UserError
from espcn_lab.model import ESPCN

DEVICES = ("auto", "cpu", "cuda", "mps")


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


BACKENDS = ("auto", "torch", "onnxruntime", "triton")


Runner = Callable[[torch.Tensor], torch.Tensor]


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda, else mps, else cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name.split(":")[0] not in DEVICES[1:]:
        raise UserError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device cuda requested but no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device mps requested but MPS is not available")
    return torch.device(name)


def pick_precision(name: str, device: torch.device) -> str:
    """'auto' -> fp16 on CUDA (matches fp32 within 0.01 dB), fp32 elsewhere."""
    if name == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; choose from auto, {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type == "cpu":
        raise UserError("fp16 is not supported on cpu; use fp32 or bf16")
    return name


def pick_backend(name: str, device: torch.device, precision: str) -> str:
    """'auto' -> onnxruntime for fp32 on CPU when installed, torch otherwise."""
    if name == "auto":
        ort_ok = importlib.util.find_spec("onnxruntime") is not None
        return "onnxruntime" if device.type == "cpu" and precision == "fp32" and ort_ok else "torch"
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name == "onnxruntime" and precision != "fp32":
        raise UserError("the onnxruntime backend runs fp32; drop --precision or use --backend torch")
    if name == "onnxruntime" and device.type not in ("cpu", "cuda"):
        raise UserError(f"the onnxruntime backend runs on cpu or cuda, not {device.type}")
    if name == "triton" and device.type != "cuda":
        raise UserError(f"the triton backend needs a CUDA device, not {device.type}; use --backend auto, torch or onnxruntime")
    return name


def make_runner(model: ESPCN, backend: str, device: torch.device, precision: str,
                channels_last: bool = True, compile: bool = False) -> Runner:
    """The network as a function of ``(B, C, h, w)`` float32 tensors on ``device``."""
    if backend == "onnxruntime":
        return _ort_runner(model, device)
    if backend == "triton":
        from espcn_lab.deploy.triton_kernel import triton_runner

        return triton_runner(model, device, precision)
    return _torch_runner(model, device, PRECISIONS[precision], channels_last, compile)


def _torch_runner(model: ESPCN, device: torch.device, dtype: torch.dtype, channels_last: bool,
                  compile: bool) -> Runner:
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = copy.deepcopy(model).eval().to(device=device, dtype=dtype, memory_format=layout)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if compile:
        net = torch.compile(net, dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        return net(x.to(dtype).contiguous(memory_format=layout)).float()

    return run


def _ort_runner(model: ESPCN, device: torch.device) -> Runner:
    from espcn_lab.deploy.onnx import onnx_bytes

    session = ort_session(onnx_bytes(model), device)
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)

    return run


def cuda_graph(fn: Runner, example: torch.Tensor) -> Runner:
    """Capture ``fn`` for ``example``'s shape once; the result copies its input in and replays the graph."""
    static_in = example.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # warm-up off the capture stream (cuDNN autotuning, allocations)
            fn(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn(static_in)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static_in.copy_(x)
        graph.replay()
        return static_out

    return replay
