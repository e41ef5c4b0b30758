"""``bench --pipeline``: end-to-end video frames/s and what caps it, measured in the same run.

Three runs of the real video path (``video.upscale_video``: decode -> batched frame function ->
encoder thread) on the same clip: with the model (``pipeline``), with MATLAB bicubic (the model-free
baseline) and with nearest-neighbour repetition (``decode_encode``: next to no pixel work, so its
CPU time is what decoding and encoding cost). Each reports frames/s, CPU core-ms per frame (all
threads of the process) and how busy the cores were (CPU time / wall time / cores).

The ceiling: with every core busy, a frame cannot take less than (network core-ms + codec core-ms)
/ cores, where the network's core-ms is ``ms_per_frame`` times the cores it runs on. So
``codec_bound_fps`` = cores * 1000 / (cores * ms_per_frame + codec core-ms); ``pipeline_over_network``
(the issue's figure) can reach 0.9 only when the codec costs under ~0.2 of the network.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from espcn_lab.deploy.ops import bicubic_upsample


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


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def timed_video_run(src: Path, dst: Path, fn: Callable, scale: int, codec: str, preset: str | None) -> dict:
    from espcn_lab.deploy.video import upscale_video

    t0, c0 = time.perf_counter(), _cpu_seconds()
    done = upscale_video(src, dst, fn, scale, codec=codec, progress=False, preset=preset)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    n = done["frames"]
    return {"frames": n, "codec": done["codec"], "fps": round(n / wall, 2), "cpu_ms_per_frame": round(cpu / n * 1e3, 1),
            "core_use": round(cpu / wall / cores(), 3)}


def bench_pipeline(upscaler, size: tuple[int, int], net_ms: float | None = None, frames: int = 24,
                   video: Path | None = None, codec: str = "auto", preset: str | None = None) -> dict:
    """End-to-end video fps of ``upscaler`` at output ``size`` (height, width) against the model-free paths,
    and the codec-bound ceiling."""
    import tempfile

    height, width = size
    s = upscaler.scale
    paths = {"decode_encode": nearest_frames(s), "decode_bicubic_encode": bicubic_frames(upscaler.device, s),
             "pipeline": upscaler}
    with tempfile.TemporaryDirectory() as tmp:
        src = video or synthetic_clip(Path(tmp) / "lq.mkv", height // s, width // s, frames)
        ext = {"rawvideo": ".y4m", "ffv1": ".mkv"}.get(codec, ".mp4")  # a container that holds the codec
        runs = {name: timed_video_run(src, Path(tmp) / f"{name}{ext}", fn, s, codec, preset) for name, fn in paths.items()}
    pipe, codec_only = runs["pipeline"], runs["decode_encode"]
    report = {"frames": pipe["frames"], "codec": pipe["codec"], "preset": preset or "default",
              "source": str(video or "synthetic"), "cores": cores(), **{f"{k}_run": v for k, v in runs.items()},
              "decode_bicubic_encode_fps": runs["decode_bicubic_encode"]["fps"], "decode_encode_fps": codec_only["fps"],
              "pipeline_fps": pipe["fps"],
              "pipeline_over_floor": round(pipe["fps"] / runs["decode_bicubic_encode"]["fps"], 3)}
    if net_ms:
        bound = cores() * 1e3 / (cores() * net_ms + codec_only["cpu_ms_per_frame"])
        report.update({"network_fps": round(1e3 / net_ms, 2), "pipeline_over_network": round(pipe["fps"] * net_ms / 1e3, 3),
                       "codec_bound_fps": round(bound, 2), "pipeline_over_codec_bound": round(pipe["fps"] / bound, 3)})
    return report
