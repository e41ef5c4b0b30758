"""``espcn-lab bench``: ms per frame and frames/s of a model, with its baselines measured in the same run.

The model figure (``ms_per_frame``, ``fps``) is the network on a prepared Y plane at the LR size
of the chosen output resolution, as the paper and ``SPEED.md`` time it; ``frame_ms`` adds the whole
RGB frame path (colour conversion, bicubic chroma, uint8 in and out) and ``frame_over_network`` is
their ratio. The two are timed side by side, call by call (``measure_side_by_side``), so load on a
shared machine moves both alike. On CPU the frame runs ``cpu_frame`` (network without its pixel
shuffle + numba colour kernels); ``network_phases_ms`` is that network alone and
``colour_over_phases`` what the colour work adds to it. ``frame_ms_split`` times the torch colour
path (ONNX Runtime network, colour work in many torch ops) and ``split_over_frame`` the ratio.
Every figure is the median of many timed calls after warm-up, CUDA-synchronised on GPU. Baselines
(same device, same run): stock PyTorch fp32 eager NCHW ESPCN, the same network in PyTorch at the
run's precision, the network with a deconvolution last layer, SRCNN 9-5-5 (+ bicubic), bicubic
alone, and OpenCV dnn_superres ESPCN. ``--pipeline``: ``bench_video``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from espcn_lab.deploy.bench_video import PIPELINE_FRAMES, bench_pipeline
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.deploy.ops import bicubic_upsample
from espcn_lab.model import ESPCN
from espcn_lab.paths import peer_models

RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}


PEER_MODELS = peer_models()


def _timed(fn: Callable[[int], object], i: int, cuda: bool) -> float:
    """ms of one call ``fn(i)``: CUDA events on GPU, the wall clock elsewhere."""
    if cuda:
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        fn(i)
        t1.record()
        t1.synchronize()
        return t0.elapsed_time(t1)
    t0 = time.perf_counter()
    fn(i)
    return (time.perf_counter() - t0) * 1e3


def _figure(times: list[float]) -> dict:
    ms = statistics.median(times)
    return {"ms_per_frame": round(ms, 4), "fps": round(1e3 / ms, 2), "runs": len(times)}


def measure(fn: Callable[[int], object], device: torch.device, warmup: int = 3, runs: int = 20,
            budget_s: float = 10.0) -> dict:
    """Median ms of ``fn(i)`` over up to ``runs`` calls (at least 3, stopping once ``budget_s`` is spent)."""
    return measure_side_by_side({"fn": fn}, device, warmup, runs, budget_s)["fn"]


def measure_side_by_side(fns: dict[str, Callable[[int], object]], device: torch.device, warmup: int = 3,
                         runs: int = 20, budget_s: float = 10.0) -> dict[str, dict]:
    """``measure`` for several functions called in turn, call by call (order reversed every round), so a
    change of machine load hits them alike and their ratio holds even where absolute times drift."""
    cuda = device.type == "cuda"
    for i in range(warmup):
        for fn in fns.values():
            fn(i)
    if cuda:
        torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for i in range(runs):
        for name in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            times[name].append(_timed(fns[name], i, cuda))
        if i >= 2 and time.perf_counter() - start > budget_s * len(fns):
            break
    return {name: _figure(t) for name, t in times.items()}


def deconv_twin(model: ESPCN) -> nn.Module:
    """The same hidden layers with a ConvTranspose2d(k=3r, stride=r) last layer instead of sub-pixel."""
    s, last = model.scale, model.conv_layers()[-1]
    deconv = nn.ConvTranspose2d(last.in_channels, model.channels, 3 * s, stride=s, padding=s)
    return nn.Sequential(*model.body, deconv).eval()


def srcnn(channels: int = 1) -> nn.Module:
    """SRCNN 9-5-5 (Dong et al.), the paper's speed baseline; it runs on the bicubic-upscaled frame."""
    return nn.Sequential(nn.Conv2d(channels, 64, 9, padding=4), nn.ReLU(), nn.Conv2d(64, 32, 5, padding=2),
                         nn.ReLU(), nn.Conv2d(32, channels, 5, padding=2)).eval()


def _torch_fn(net: nn.Module, inputs: list[torch.Tensor], dtype: torch.dtype, layout, pre=None):
    """Timed closure: ``net`` (after ``pre``, e.g. bicubic for SRCNN) on rotating inputs."""
    net = net.to(inputs[0].device, dtype).to(memory_format=layout)
    xs = [x.to(dtype) for x in inputs]

    @torch.inference_mode()
    def run(i: int):
        x = xs[i % len(xs)]
        if pre is not None:
            x = pre(x)
        return net(x.contiguous(memory_format=layout))

    return run


def _opencv(lq_y: torch.Tensor, scale: int, peer_models: Path) -> Callable[[int], object] | str:
    """OpenCV dnn_superres ESPCN on the same LR frame (BGR in/out, its own colour handling), or why not."""
    try:
        import cv2
    except ImportError:
        return "opencv-contrib-python-headless not installed"
    path = next((p for p in (peer_models / f"ESPCN_x{scale}.pb", peer_models / "ESPCN" / f"ESPCN_x{scale}.pb")
                 if p.is_file()), None)
    if path is None or not hasattr(cv2, "dnn_superres"):
        return f"no ESPCN_x{scale}.pb under {peer_models}"
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    try:  # OpenCV 5's dnn no longer reads dnn_superres's TensorFlow .pb files (it parses them as ONNX)
        sr.readModel(str(path))
    except cv2.error:
        return f"OpenCV {cv2.__version__} cannot read {path.name} (dnn_superres's .pb models need OpenCV 4)"
    sr.setModel("espcn", scale)
    bgr = (lq_y[0, 0].cpu() * 255).byte().numpy()[..., None].repeat(3, axis=2)
    return lambda i: sr.upsample(bgr)


def _baselines(model: ESPCN, inputs: list[torch.Tensor], upscaler: Upscaler, opts: dict,
               peer_models: Path) -> dict:
    import copy

    from tqdm import tqdm

    from espcn_lab.deploy.runtime import PRECISIONS

    dtype, cl, s = PRECISIONS[upscaler.precision], torch.channels_last, model.scale
    fns: dict[str, Callable | str] = {
        "espcn_torch_fp32_nchw_eager": _torch_fn(copy.deepcopy(model), inputs, torch.float32, torch.contiguous_format),
        "espcn_torch": _torch_fn(copy.deepcopy(model), inputs, dtype, cl),
        "espcn_deconv": _torch_fn(deconv_twin(copy.deepcopy(model)), inputs, dtype, cl),
        "srcnn_9_5_5": _torch_fn(srcnn(model.channels), inputs, dtype, cl, pre=lambda x: bicubic_upsample(x, s)),
        "bicubic": lambda i: bicubic_upsample(inputs[i % len(inputs)].to(dtype), s),
        "opencv_espcn": _opencv(inputs[0], s, peer_models) if model.channels == 1 else "needs a Y model",
    }
    out = {}
    for name, fn in tqdm(fns.items(), desc="baselines", leave=False):
        if isinstance(fn, str):
            out[name] = {"skipped": fn}
        else:
            device = torch.device("cpu") if name == "opencv_espcn" else inputs[0].device
            out[name] = measure(fn, device, **opts)
    return out


def _ratios(result: dict, scale: int) -> dict:
    import math

    base = result["baselines"]

    def ms(name: str) -> float | None:
        return base.get(name, {}).get("ms_per_frame")

    pairs = {"stock_over_model": (ms("espcn_torch_fp32_nchw_eager"), result["ms_per_frame"]),
             "opencv_over_model": (ms("opencv_espcn"), result["ms_per_frame"]),
             "srcnn_over_espcn": (ms("srcnn_9_5_5"), ms("espcn_torch")),
             "deconv_over_subpixel": (ms("espcn_deconv"), ms("espcn_torch"))}
    ratios = {k: round(a / b, 2) for k, (a, b) in pairs.items() if a and b}
    ratios["paper_deconv_claim"] = round(math.log2(scale**2), 2)
    return ratios


def bench_resolution(upscaler: Upscaler, model: ESPCN, resolution: str, opts: dict, baselines: bool = True,
                     peer_models: Path = PEER_MODELS) -> dict:
    """Model, full-frame and baseline timings for one output resolution."""
    import numpy as np

    height, width = RESOLUTIONS[resolution]
    s, dev = model.scale, upscaler.device
    h, w = height // s, width // s
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, model.channels, h, w, generator=gen).to(dev) for _ in range(4)]
    net = upscaler.net
    if upscaler.uses_cuda_graphs:
        from espcn_lab.deploy.runtime import cuda_graph

        net = cuda_graph(net, inputs[0])
    frames = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(2)]
    upscaler(frames[0])  # builds the frame runner
    fns = {"network": lambda i: net(inputs[i % len(inputs)]), "frame": lambda i: upscaler(frames[i % 2])}
    runner = upscaler.frame_runner(3)
    if hasattr(runner, "network"):  # cpu_frame: its network alone (no pixel shuffle), on the frame's buffers
        fns["network_phases"] = lambda i: runner.network()
    timed = measure_side_by_side(fns, dev, **opts)
    result = {"resolution": resolution, "output": f"{w * s}x{h * s}", "input": f"{w}x{h}", **timed["network"],
              "frame_ms": timed["frame"]["ms_per_frame"]}
    result["frame_over_network"] = round(result["frame_ms"] / result["ms_per_frame"], 3)
    if "network_phases" in timed:
        result["network_phases_ms"] = timed["network_phases"]["ms_per_frame"]
        result["colour_over_phases"] = round(result["frame_ms"] / result["network_phases_ms"] - 1, 3)
    if upscaler.backend == "onnxruntime":  # the split path: ONNX Runtime network, colour work in torch
        split = [torch.from_numpy(f[None]).to(dev) for f in frames]
        with torch.inference_mode():
            result["frame_ms_split"] = measure(lambda i: upscaler.pipeline(split[i % 2]), dev, **opts)["ms_per_frame"]
        result["split_over_frame"] = round(result["frame_ms_split"] / result["frame_ms"], 2)
    if baselines:
        result["baselines"] = _baselines(model, inputs, upscaler, opts, peer_models)
        result["ratios"] = _ratios(result, s)
    return result


def machine(device: torch.device) -> dict:
    """Where the figures were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(device)}
    if hasattr(os, "getloadavg"):  # what else was running: figures on a shared machine move with it
        info["load_avg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_bench(upscaler: Upscaler, model: ESPCN, resolutions: list[str], runs: int = 20, warmup: int = 3,
              budget_s: float = 10.0, baselines: bool = True, peer_models: Path = PEER_MODELS,
              pipeline: bool = False, video: Path | None = None, preset: str | None = None,
              codec: str = "auto", frames: int = PIPELINE_FRAMES) -> dict:
    """The ``bench`` report: top-level figures are the first resolution's; all of them under ``by_resolution``."""
    opts = {"warmup": warmup, "runs": runs, "budget_s": budget_s}
    by_res = {}
    for res in resolutions:
        by_res[res] = bench_resolution(upscaler, model, res, opts, baselines, peer_models)
        if pipeline:
            by_res[res]["pipeline"] = bench_pipeline(upscaler, RESOLUTIONS[res], by_res[res]["ms_per_frame"], video=video,
                                                     preset=preset, codec=codec, frames=frames)
    first = by_res[resolutions[0]]
    return {"scale": model.scale, "backend": upscaler.backend, "precision": upscaler.precision,
            "machine": machine(upscaler.device), **first, "by_resolution": by_res}
