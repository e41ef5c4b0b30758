"""``bench --pipeline``: end-to-end video frames/s and what caps it, measured in the same run.

Runs of the real video path (``video.upscale_video``: decode -> batched frame function -> encoder
thread) on the same clip: with the model through RGB (``pipeline``: the decoder's frames converted to
RGB, the RGB frame path, RGB converted back for the encoder) and, where the upscaler has it, through
YUV (``pipeline_yuv``: yuv420p planes from decoder to encoder, ``Upscaler.yuv420p_runner``), timed
in turn RGB, YUV, YUV, RGB so that load on a shared machine moves both alike; with MATLAB bicubic
(the model-free baseline) and with nearest-neighbour repetition of RGB frames (``decode_encode``)
and of yuv420p planes (``decode_encode_yuv``): next to no pixel work, so their CPU time is what
decoding, the colour conversions and encoding cost on each path. Each reports frames/s, CPU core-ms
per frame (all threads of the process) and how busy the cores were (CPU time / wall time / cores).

The ceiling: with every core busy, a frame cannot take less than (network core-ms + codec core-ms)
/ cores, where the network's core-ms is ``ms_per_frame`` times the cores it runs on. So
``codec_bound_fps`` = cores * 1000 / (cores * ms_per_frame + codec core-ms) (``codec_bound_fps_yuv``
with the YUV path's codec core-ms); ``pipeline_over_network`` and ``pipeline_yuv_over_network``
(the issue's figure) can reach 0.9 only when the codec costs under ~0.2 of the network. On a shared
machine the network is also timed alone between the runs (``network_interleaved_run``), so
``pipeline_over_network_interleaved`` and ``pipeline_yuv_over_network_interleaved`` hold the pipeline
to a network figure taken under the same load, minutes apart at most.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from espcn_lab.deploy.ops import bicubic_upsample

PIPELINE_FRAMES = 48  # the synthetic clip: every run opens and closes a video, so a short clip under-reads steady state


def synthetic_clip(path: Path, height: int, width: int, frames: int) -> Path:
    """A smooth moving test pattern (lossless FFV1) to time the video pipeline without real footage."""
    import av

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            rgb = np.stack([np.sin((xx + 4 * t) / 23), np.cos((yy - 3 * t) / 17), np.sin((xx + yy + 5 * t) / 31)], -1)
            frame = av.VideoFrame.from_ndarray(((rgb + 1) * 127.5).astype(np.uint8), format="rgb24")
            frame.pts = t
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def bicubic_frames(device: torch.device, scale: int) -> Callable:
    """The model-free video path: (B, h, w, 3) uint8 -> bicubic (B, h*s, w*s, 3) uint8 on ``device``."""
    def run(frames):
        x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float()
        y = bicubic_upsample(x, scale).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
        return y.permute(0, 2, 3, 1).cpu().numpy()
    return run


def nearest_frames(scale: int) -> Callable:
    """(B, h, w, 3) uint8 -> each pixel repeated ``scale`` x ``scale`` times: the codec's cost alone."""
    return lambda frames: frames.repeat(scale, axis=1).repeat(scale, axis=2)


def nearest_yuv(scale: int) -> Callable[[int, int], Callable | None]:
    """As ``upscale_video``'s ``yuv``: for even LR sizes, yuv420p (B, h*3/2, w) -> every plane's samples repeated
    ``scale`` x ``scale`` times: the YUV path's codec cost alone."""
    def make(h: int, w: int) -> Callable | None:
        def run(frames: np.ndarray) -> np.ndarray:
            b, flat, n = frames.shape[0], frames.reshape(frames.shape[0], -1), h * w
            planes = (flat[:, :n].reshape(b, h, w), flat[:, n:n * 5 // 4].reshape(b, h // 2, w // 2),
                      flat[:, n * 5 // 4:].reshape(b, h // 2, w // 2))
            big = [p.repeat(scale, axis=1).repeat(scale, axis=2).reshape(b, -1) for p in planes]
            return np.concatenate(big, axis=1).reshape(b, -1, w * scale)
        return None if h % 2 or w % 2 else run
    return make


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def timed_video_run(src: Path, dst: Path, fn: Callable, scale: int, codec: str, preset: str | None,
                    yuv: Callable | None = None) -> dict:
    """One ``upscale_video`` run: frames, wall and CPU seconds, the codec and the path frames took."""
    from espcn_lab.deploy.video import upscale_video

    t0, c0 = time.perf_counter(), _cpu_seconds()
    done = upscale_video(src, dst, fn, scale, codec=codec, progress=False, preset=preset, yuv=yuv)
    return {"frames": done["frames"], "wall": time.perf_counter() - t0, "cpu": _cpu_seconds() - c0,
            "codec": done["codec"], "frame_path": done["frame_path"]}


def run_figures(runs: list[dict]) -> dict:
    """Runs of one path summed: frames/s, core-ms per frame, core use."""
    n, wall, cpu = (sum(r[k] for r in runs) for k in ("frames", "wall", "cpu"))
    return {"frames": runs[0]["frames"], "codec": runs[0]["codec"], "frame_path": runs[0]["frame_path"],
            "runs": len(runs), "fps": round(n / wall, 2), "cpu_ms_per_frame": round(cpu / n * 1e3, 1),
            "core_use": round(cpu / wall / cores(), 3)}


def _timed_network(upscaler, h: int, w: int, frames: int) -> dict:
    """The network alone (as ``ms_per_frame`` times it: one LR Y plane a call) on ``frames`` frames, as a run."""
    x = torch.rand(1, upscaler.channels, h, w, generator=torch.Generator().manual_seed(0)).to(upscaler.device)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    with torch.inference_mode():
        for _ in range(frames):
            y = upscaler.net(x)
        if upscaler.device.type == "cuda":
            torch.cuda.synchronize(upscaler.device)
    del y
    return {"frames": frames, "wall": time.perf_counter() - t0, "cpu": _cpu_seconds() - c0, "codec": None,
            "frame_path": None}


def _lr_size(src: Path) -> tuple[int, int]:
    import av

    with av.open(str(src)) as probe:
        ctx = probe.streams.video[0].codec_context
        return ctx.height, ctx.width


def bench_pipeline(upscaler, size: tuple[int, int], net_ms: float | None = None, frames: int = PIPELINE_FRAMES,
                   video: Path | None = None, codec: str = "auto", preset: str | None = None, batch: int = 4) -> dict:
    """End-to-end video fps of ``upscaler`` at output ``size`` (height, width), through RGB and through YUV,
    against the model-free paths, and the codec-bound ceilings."""
    import tempfile
    from collections import defaultdict

    height, width = size
    s = upscaler.scale
    with tempfile.TemporaryDirectory() as tmp:
        src = video or synthetic_clip(Path(tmp) / "lq.mkv", height // s, width // s, frames)
        h, w = _lr_size(src)
        yuv_fn = upscaler.yuv420p_runner(h, w)
        upscaler(np.zeros((batch, h, w, 3), np.uint8))  # buffers bound, first runs at this shape: out of the timing
        if yuv_fn is not None:
            yuv_fn(np.zeros((batch, h * 3 // 2, w), np.uint8))  # and numba's first build of the YUV kernel
        ext = {"rawvideo": ".y4m", "ffv1": ".mkv"}.get(codec, ".mp4")  # a container that holds the codec
        plan = [("decode_encode", nearest_frames(s), None), ("decode_bicubic_encode", bicubic_frames(upscaler.device, s), None)]
        pipes = [("pipeline", upscaler, None)]
        if yuv_fn is not None:
            plan.insert(1, ("decode_encode_yuv", nearest_frames(s), nearest_yuv(s)))
            pipes.append(("pipeline_yuv", upscaler, upscaler.yuv420p_runner))
        raw: dict[str, list[dict]] = defaultdict(list)
        net = ("network", None, None)  # the network alone between the runs: N, RGB, YUV, N, YUV, RGB, N
        for name, fn, yuv in plan + [net] + pipes + [net] + pipes[::-1] + [net]:
            if name == "network":
                raw[name].append(_timed_network(upscaler, h, w, frames))
            else:
                raw[name].append(timed_video_run(src, Path(tmp) / f"{name}{ext}", fn, s, codec, preset, yuv))
    runs = {name: run_figures(r) for name, r in raw.items()}
    net_run = runs.pop("network")
    pipe, codec_only = runs["pipeline"], runs["decode_encode"]
    report = {"frames": pipe["frames"], "codec": pipe["codec"], "preset": preset or "default",
              "source": str(video or "synthetic"), "cores": cores(), **{f"{k}_run": v for k, v in runs.items()},
              "decode_bicubic_encode_fps": runs["decode_bicubic_encode"]["fps"], "decode_encode_fps": codec_only["fps"],
              "pipeline_fps": pipe["fps"],
              "pipeline_over_floor": round(pipe["fps"] / runs["decode_bicubic_encode"]["fps"], 3)}
    yuv_run = runs.get("pipeline_yuv")
    report.update({"network_interleaved_run": net_run,
                   "pipeline_over_network_interleaved": round(pipe["fps"] / net_run["fps"], 3)})
    if yuv_run:
        report.update({"pipeline_yuv_fps": yuv_run["fps"], "yuv_over_rgb": round(yuv_run["fps"] / pipe["fps"], 3),
                       "pipeline_yuv_over_network_interleaved": round(yuv_run["fps"] / net_run["fps"], 3)})
    if net_ms:
        bound = cores() * 1e3 / (cores() * net_ms + codec_only["cpu_ms_per_frame"])
        report.update({"network_fps": round(1e3 / net_ms, 2), "pipeline_over_network": round(pipe["fps"] * net_ms / 1e3, 3),
                       "codec_bound_fps": round(bound, 2), "pipeline_over_codec_bound": round(pipe["fps"] / bound, 3)})
        if yuv_run:
            bound = cores() * 1e3 / (cores() * net_ms + runs["decode_encode_yuv"]["cpu_ms_per_frame"])
            report.update({"pipeline_yuv_over_network": round(yuv_run["fps"] * net_ms / 1e3, 3),
                           "codec_bound_fps_yuv": round(bound, 2),
                           "pipeline_yuv_over_codec_bound": round(yuv_run["fps"] / bound, 3)})
    return report
