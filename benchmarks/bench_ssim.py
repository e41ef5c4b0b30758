"""SSIM-Y cost: espcn_lab.metrics.ssim_y (two 1-D Gaussian passes) vs torchmetrics' 2-D float64 convolution.

    python benchmarks/bench_ssim.py [--size 500 375] [--repeat 5] [--threads 1]

Same random image pair, same definition (11x11 Gaussian, sigma 1.5, reflect padding, [0, 255],
float64), alternating the two in one run; prints the median ms per image, the ratio and the
difference of the two values.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def torchmetrics_ssim(sr: np.ndarray, gt: np.ndarray) -> float:
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = (torch.tensor(x)[None, None] for x in (sr, gt))
    return float(structural_similarity_index_measure(a, b, data_range=255.0, gaussian_kernel=True, sigma=1.5,
                                                     kernel_size=11))


def pair(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (size[1], size[0])).astype(np.float64)
    return np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255), gt


def main() -> None:
    from espcn_lab.evaluate.metrics import ssim_y

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[500, 375], metavar=("W", "H"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(args.size)
    sr, gt = pair(size)
    methods = {"ours (two 1-D passes)": ssim_y, "torchmetrics (2-D conv)": torchmetrics_ssim}
    values = {name: f(sr, gt) for name, f in methods.items()}  # warm-up, and the values compared
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeat):
        for name, f in methods.items():
            start = time.perf_counter()
            f(sr, gt)
            times[name].append((time.perf_counter() - start) * 1e3)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{size[0]}x{size[1]} float64, {args.threads} torch thread(s), torch {torch.__version__}")
    for name in methods:
        print(f"  {name:26s} {median[name]:8.1f} ms   SSIM {values[name]:.12f}")
    (ours, ref), (v_ours, v_ref) = median.values(), values.values()
    print(f"  torchmetrics / ours: {ref / ours:.1f}x time; |difference| {abs(v_ours - v_ref):.1e}")

if __name__ == "__main__":
    main()
