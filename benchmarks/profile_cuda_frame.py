"""Where a whole RGB frame's time goes on CUDA: upload, the frame pipeline, download, host copy.

`espcn-lab bench --device cuda` reports the network alone (``ms_per_frame``) and the whole uint8
RGB frame (``frame_ms``); this splits the second into its stages, each timed on its own
(synchronised, median of ``--runs``), with pinned-memory variants of the two copies beside the
pageable ones the Upscaler uses. Usage (on a CUDA machine):
    python benchmarks/profile_cuda_frame.py --model x3 --json prof.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from espcn_lab.checkpoint import load_model
from espcn_lab.deploy.infer import Upscaler

SIZES = {"1080p": (1080, 1920), "4k": (2160, 3840)}


def timed(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return round(statistics.median(times), 3)


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="x3")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("profile_cuda_frame.py: needs a CUDA device (this machine has none)")
    model = load_model(args.model).model
    s = model.scale
    up = Upscaler(model, device="cuda", precision="fp16")
    dev = up.device
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "scale": s}
    for name, (H, W) in SIZES.items():
        h, w = H // s, W // s
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        lq = torch.from_numpy(frame[None].copy()).to(dev)
        sr = up._run(lq)
        out = np.empty((H, W, 3), np.uint8)
        pin_in = torch.from_numpy(frame[None].copy()).pin_memory()
        pin_out = torch.empty(sr.shape, dtype=torch.uint8).pin_memory()
        row = {
            "whole_frame": timed(lambda: up(frame), args.runs),
            "upload_pageable": timed(lambda: torch.from_numpy(np.require(frame[None], requirements="CW")).to(dev), args.runs),
            "upload_pinned": timed(lambda: pin_in.to(dev, non_blocking=True), args.runs),
            "pipeline_on_device": timed(lambda: up._run(lq), args.runs),
            "network_only": timed(lambda: up.net(lq[..., :1].permute(0, 3, 1, 2).float()), args.runs),
            "download_pageable": timed(lambda: sr.cpu().numpy(), args.runs),
            "download_pinned": timed(lambda: pin_out.copy_(sr, non_blocking=True), args.runs),
            "host_copy_into_output": timed(lambda: out.__setitem__(slice(None), pin_out.numpy()[0]), args.runs),
        }
        report[name] = row
        print(name, json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
