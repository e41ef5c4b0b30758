"""CPU whole RGB frame at 1920x1080 output: ours against the network alone, the path it replaced, and the floor.

For x2/x3/x4 (seeded paper 5-3-3 / 64-32 tanh models; timing does not depend on the weights), timed
side by side call by call in one run (``bench.measure_side_by_side``):
  network         ONNX Runtime network on a prepared Y plane, pixel shuffle included (``ms_per_frame``)
  network_phases  the same network without the shuffle, as ``cpu_frame`` runs it
  frame           ours: the whole RGB frame, ``Upscaler`` (ONNX Runtime network + numba colour kernels)
  frame_graph     the one-graph ONNX Runtime frame path it replaced (``frame_graph``), same session options
  frame_torch     the network in ONNX Runtime with the colour work in torch ops (``Upscaler.pipeline``)
Then the floor: the machine's fp32 multiply-add rate on all cores, both as large torch and numpy
matmuls (what a library reaches) and as an FMA-bound C loop compiled here with ``cc -march=native``
(the instruction ceiling; the floor uses it when a compiler exists), the network's multiply-adds
per frame (``model.multiply_adds``) and so the least ms a frame can take, with ours as a multiple.
``--pipeline`` adds the video figures of ``bench_video`` and the same clip through the one-graph
frame path.

Usage: ``python benchmarks/bench_cpu_frame.py [--scales 2 3 4] [--runs 15] [--pipeline] [--preset P]``;
writes ``benchmarks/results/cpu_frame.json`` and prints a markdown table with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from espcn_lab.deploy.bench import machine, measure_side_by_side
from espcn_lab.deploy.bench_video import (
    bench_pipeline,
    cores,
    run_figures,
    synthetic_clip,
    timed_video_run,
)
from espcn_lab.deploy.frame_graph import ort_frame_runner
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.model import ESPCN, multiply_adds

RESULTS = Path(__file__).parent / "results"


def matmul_peak(n: int = 4096, repeats: int = 5) -> dict:
    """Best GMAC/s of an n x n x n fp32 matmul in torch and in numpy, all cores."""
    torch.set_num_threads(cores())
    a, b = torch.rand(n, n), torch.rand(n, n)
    out = {}
    for name, mm in (("torch", lambda: torch.mm(a, b)), ("numpy", lambda: a.numpy() @ b.numpy())):
        mm()
        best = min(_seconds(mm) for _ in range(repeats))
        out[name] = round(n**3 / best / 1e9, 1)
    return out


_FMA_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef float v16 __attribute__((vector_size(64)));
static long iters;
#define STEP(a) a = a * m + c;
static void *loop(void *out) {  /* 12 independent chains of a*m + c, 16 lanes each: FMA-throughput bound */
  v16 m, c, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
  for (int k = 0; k < 16; k++) {
    m[k] = 0.999999f; c[k] = 1e-7f; a0[k] = 1.0f + 0.01f * k;
  }
  a1 = a0 + 0.1f; a2 = a0 + 0.2f; a3 = a0 + 0.3f; a4 = a0 + 0.4f; a5 = a0 + 0.5f;
  a6 = a0 + 0.6f; a7 = a0 + 0.7f; a8 = a0 + 0.8f; a9 = a0 + 0.9f; a10 = a0 + 1.0f; a11 = a0 + 1.1f;
  for (long n = 0; n < iters; n++) {
    STEP(a0) STEP(a1) STEP(a2) STEP(a3) STEP(a4) STEP(a5) STEP(a6) STEP(a7) STEP(a8) STEP(a9) STEP(a10) STEP(a11)
  }
  v16 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  float t = 0;
  for (int k = 0; k < 16; k++) t += s[k];
  *(float *)out = t;
  return 0;
}
int main(int argc, char **argv) {
  int threads = atoi(argv[1]); iters = atol(argv[2]);
  pthread_t t[256]; float r[256]; struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < threads; i++) pthread_create(&t[i], 0, loop, &r[i]);
  for (int i = 0; i < threads; i++) pthread_join(t[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = t1.tv_sec - t0.tv_sec + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  printf("%f %f\n", 12.0 * 16 * iters * threads / s / 1e9, r[0]);
  return 0;
}
"""


def fma_peak(repeats: int = 3) -> float | None:
    """GMAC/s of an FMA-bound loop on every core (the instruction ceiling); None without a C compiler."""
    import shutil
    import subprocess
    import tempfile

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "fma.c", Path(tmp) / "fma"
        src.write_text(_FMA_C)
        for flags in (["-march=native", "-mprefer-vector-width=512"], ["-march=native"], []):  # x86 first
            if subprocess.run([cc, "-O2", *flags, "-o", str(exe), str(src), "-lpthread"], capture_output=True).returncode == 0:
                break
        else:
            return None
        runs = [float(subprocess.run([str(exe), str(cores()), "50000000"], capture_output=True, text=True,
                                     check=True).stdout.split()[0]) for _ in range(repeats)]
    return round(max(runs), 1)


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_scale(scale: int, runs: int, budget: float) -> dict:
    torch.manual_seed(0)
    model = ESPCN(scale).eval()
    h, w = 1080 // scale, 1920 // scale
    up = Upscaler(model, device="cpu")
    graph = ort_frame_runner(model, 3, torch.device("cpu"))
    y = [torch.rand(1, 1, h, w) for _ in range(2)]
    frames = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(2)]
    batched = [torch.from_numpy(f[None]) for f in frames]
    runner = up.frame_runner(3)
    fns = {"network": lambda i: up.net(y[i % 2]), "network_phases": lambda i: runner.network(),
           "frame": lambda i: up(frames[i % 2]), "frame_graph": lambda i: graph(batched[i % 2]),
           "frame_torch": lambda i: up.pipeline(batched[i % 2])}
    with torch.inference_mode():
        ms = {k: v["ms_per_frame"] for k, v in measure_side_by_side(fns, torch.device("cpu"), 2, runs, budget).items()}
    return {"scale": scale, "ms": ms, "macs": multiply_adds(model, h, w), "runner": type(runner).__name__,
            "frame_over_network": round(ms["frame"] / ms["network"], 3),
            "frame_graph_over_network": round(ms["frame_graph"] / ms["network"], 3),
            "frame_over_phases": round(ms["frame"] / ms["network_phases"], 3), "upscaler": up, "graph": graph}


def _pipelines(r: dict, scale: int, args) -> dict:
    """``bench_pipeline`` on a synthetic clip, and the same clip through the one-graph frame path (before)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        clip = synthetic_clip(Path(tmp) / "lq.mkv", 1080 // scale, 1920 // scale, args.frames)
        report = bench_pipeline(r["upscaler"], (1080, 1920), r["ms"]["network"], video=clip, preset=args.preset)
        graph = r["graph"]
        before = run_figures([timed_video_run(clip, Path(tmp) / "graph.mp4", lambda f: graph(torch.from_numpy(f)).numpy(),
                                              scale, "auto", args.preset)])
    report["graph_pipeline_run"] = before
    report["pipeline_over_graph_pipeline"] = round(report["pipeline_fps"] / before["fps"], 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per timed function")
    parser.add_argument("--pipeline", action="store_true")
    parser.add_argument("--preset", default=None, help="x264 preset for --pipeline")
    parser.add_argument("--frames", type=int, default=48, help="synthetic clip length for --pipeline")
    args = parser.parse_args()
    load_before = os.getloadavg()
    peak = {**matmul_peak(), "fma_loop": fma_peak()}
    gmacs = peak["fma_loop"] or max(v for v in peak.values() if v)
    rows = []
    for scale in args.scales:
        r = bench_scale(scale, args.runs, args.budget)
        r["floor_ms"] = round(r["macs"] / gmacs / 1e6, 1)
        r["network_over_floor"] = round(r["ms"]["network"] / r["floor_ms"], 2)
        if args.pipeline:
            r["pipeline"] = _pipelines(r, scale, args)
        del r["upscaler"], r["graph"]
        rows.append(r)
    report = {"machine": {**machine(torch.device("cpu")), "cores": cores(), "load_avg_before": load_before},
              "peak_gmac_s": peak, "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cpu_frame.json").write_text(json.dumps(report, indent=1))
    _print(report, gmacs)


def _print(report: dict, gmacs: float) -> None:
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}; load average before "
          f"{[round(x, 2) for x in m['load_avg_before']]}, after {m['load_avg_1_5_15']}")
    print(f"fp32 multiply-add rate, all cores: {report['peak_gmac_s']} GMAC/s (floor below uses {gmacs})\n")
    print("| scale | network | net w/o shuffle | ours: RGB frame | ours/network | one-graph frame (before) | "
          "before/network | torch colour | GMAC/frame | floor ms | network/floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["results"]:
        ms = r["ms"]
        print(f"| x{r['scale']} | {ms['network']:.1f} | {ms['network_phases']:.1f} | {ms['frame']:.1f} | "
              f"{r['frame_over_network']:.3f} | {ms['frame_graph']:.1f} | {r['frame_graph_over_network']:.3f} | "
              f"{ms['frame_torch']:.1f} | {r['macs'] / 1e9:.2f} | {r['floor_ms']} | {r['network_over_floor']} |")
    for r in report["results"]:
        if "pipeline" in r:
            p = r["pipeline"]
            print(f"x{r['scale']} video ({p['codec']} {p['preset']}): pipeline {p['pipeline_fps']} fps = "
                  f"{p['pipeline_over_network']:.2f} x network {p['network_fps']} fps; codec-bound ceiling "
                  f"{p['codec_bound_fps']} fps ({p['pipeline_over_codec_bound']:.0%} reached, cores "
                  f"{p['pipeline_run']['core_use']:.0%} busy); decode+encode alone {p['decode_encode_fps']} fps "
                  f"({p['decode_encode_run']['cpu_ms_per_frame']} core-ms/frame); decode+bicubic+encode "
                  f"{p['decode_bicubic_encode_fps']} fps; with the one-graph frame path (before) "
                  f"{p['graph_pipeline_run']['fps']} fps, {p['graph_pipeline_run']['cpu_ms_per_frame']} core-ms/frame "
                  f"(ours {p['pipeline_run']['cpu_ms_per_frame']})")


if __name__ == "__main__":
    main()
