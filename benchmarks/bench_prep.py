"""Prep throughput on ImageNet-like JPEGs (about 500x375, quality 90) with 1 and 2 workers.

The JPEGs are BSD200 photos (../shared/data/BSD200) resized and re-encoded into a temp folder.
Prints images/s per worker count, the ratio to the goal (100 images/s on a 2-core machine:
50,000 images in under 9 minutes), the scaling ratio, and the machine with its load average.

    python benchmarks/bench_prep.py [--images 300] [--scale 3] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from PIL import Image

from data_prep import PrepOptions, run_prep
from espcn_lab.paths import shared_data

GOAL = 100.0  # images/s on this 2-core machine
DATA = shared_data() / "BSD200"


def make_jpegs(folder: Path, count: int) -> None:
    """ImageNet-like inputs: BSD200 photos resized to 500x375 (or 375x500), JPEG quality 90."""
    sources = sorted(DATA.glob("*.jpg"))
    for i in range(count):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        size = (500, 375) if img.width >= img.height else (375, 500)
        img = img.resize(size, Image.BICUBIC)
        img = img.transpose(Image.FLIP_LEFT_RIGHT) if (i // len(sources)) % 2 else img
        img.save(folder / f"n{i % 10:08d}" / f"img_{i:05d}.JPEG", quality=90)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers), user + system."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "imagenet" / "train"
        for k in range(10):
            (src / f"n{k:08d}").mkdir(parents=True)
        make_jpegs(src, args.images)
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average before: "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        rates = {}
        for workers in args.workers:
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            result = run_prep(PrepOptions(out=Path(tmp) / f"out{workers}", scale=args.scale,
                                          imagenet_dir=src.parent, num_images=args.images, images_per_shard=100,
                                          workers=workers, progress=False))
            wall = time.perf_counter() - start
            rates[workers] = result["images"] / wall
            cpu_ms = (_cpu_seconds() - cpu_start) / result["images"] * 1e3
            print(f"workers={workers}: {result['images']} images, {result['pairs']} pairs in {wall:.2f} s "
                  f"-> {rates[workers]:.1f} images/s ({rates[workers] / GOAL:.2f}x the {GOAL:.0f} images/s goal); "
                  f"{cpu_ms:.1f} CPU-ms/image, i.e. {workers * 1e3 / cpu_ms:.0f} images/s if {workers} cores were idle")
        if len(rates) > 1:
            lo, hi = min(rates), max(rates)
            print(f"scaling {lo} -> {hi} workers: {rates[hi] / rates[lo]:.2f}x")
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
