"""What one swscale thread costs the video RGB path: a decoded frame -> rgb24 pixels, PyAV's default (one slice
thread per core) against ``deploy.video``'s single thread (fork-safe under PyAV 18.1.1), beside the whole RGB
frame through the shipped-size network (``Upscaler`` on the same pixels) for the share of a frame's time.

For x2/x3/x4 at 1920x1080 output, LR frames of a synthetic yuv420p clip (``bench_video.synthetic_clip``) are
decoded once; the three are then timed side by side call by call (``bench.measure_side_by_side``).

Usage: ``python benchmarks/bench_frame_pixels.py [--scales 2 3 4] [--runs 30]``; writes
``benchmarks/results/frame_pixels.json`` and prints a markdown table with the machine and PyAV's version.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import av
import torch

from espcn_lab.deploy.bench import machine, measure_side_by_side
from espcn_lab.deploy.bench_video import synthetic_clip
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.deploy.video import frame_pixels
from espcn_lab.model import ESPCN

RESULTS = Path(__file__).parent / "results"


def decoded_frames(h: int, w: int, n: int = 4) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        with av.open(str(synthetic_clip(Path(tmp) / "clip.mkv", h, w, n))) as c:
            return list(c.decode(video=0))


def bench_scale(scale: int, runs: int) -> dict:
    torch.manual_seed(0)
    h, w = 1080 // scale, 1920 // scale
    frames = decoded_frames(h, w)
    up = Upscaler(ESPCN(scale).eval(), device="cpu")
    rgb = [f.to_ndarray(format="rgb24") for f in frames]
    fns = {"pixels_default": lambda i: frames[i % len(frames)].to_ndarray(format="rgb24"),
           "pixels_one_thread": lambda i: frame_pixels(frames[i % len(frames)], "rgb24"),
           "frame": lambda i: up(rgb[i % len(rgb)])}
    ms = {k: v["ms_per_frame"] for k, v in measure_side_by_side(fns, torch.device("cpu"), 3, runs, 5.0).items()}
    return {"scale": scale, "lr": [h, w], "ms": ms,
            "one_thread_over_default": round(ms["pixels_one_thread"] / ms["pixels_default"], 3),
            "one_thread_share_of_frame": round(ms["pixels_one_thread"] / (ms["frame"] + ms["pixels_one_thread"]), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    rows = [bench_scale(s, args.runs) for s in args.scales]
    out = {"machine": machine(torch.device("cpu")), "av": av.__version__, "loadavg": os.getloadavg(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frame_pixels.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"{out['machine']}; PyAV {av.__version__}; load average {out['loadavg'][0]:.2f}")
    print("| scale | LR | rgb24, default threads (ms) | rgb24, one thread (ms) | ratio | whole frame (ms) | share |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["ms"]
        print(f"| x{r['scale']} | {r['lr'][1]}x{r['lr'][0]} | {m['pixels_default']:.2f} | {m['pixels_one_thread']:.2f} "
              f"| {r['one_thread_over_default']:.2f} | {m['frame']:.1f} | {100 * r['one_thread_share_of_frame']:.1f}% |")


if __name__ == "__main__":
    main()
