"""Training-stream throughput: pairs/s into batched float tensors (goal >= 200,000 on the 2-core dev box).

Usage: python benchmarks/bench_loader.py [SHARDS] [--batches N] [--workers 0 1 2]
SHARDS defaults to shards built here from ../shared/data/T91 (x3, Y). Reports, in the same run,
the memory-bandwidth ceiling of this machine (copying the same bytes once, uint8 -> float32),
and the stream with 0, 1 and 2 workers at a few batch sizes: what the host delivers (tar read, shuffle
pool, uint8 batches) plus the float conversion the module does on the device. Random flips/rotations
(``DihedralAugment``) also run on the device; their cost on this CPU is reported on its own line.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def pairs_per_second(loader, batches: int, augment=None) -> float:
    it = iter(loader)
    next(it)  # fill the shuffle pool / start workers outside the timing
    start, count = time.perf_counter(), 0
    for _, (lq, gt) in zip(range(batches), it):
        if augment is not None:
            lq, gt = augment(lq, gt)
        lq, gt = lq.float().div_(255.0), gt.float().div_(255.0)  # what the module does on the device
        count += len(lq)
    return count / (time.perf_counter() - start)


def ceiling(pair_bytes: int, n: int = 100_000) -> float:
    """Pairs/s of just converting uint8 pairs to float32 in batches of 256 (the unavoidable work)."""
    data = np.random.default_rng(0).integers(0, 255, (n, pair_bytes), dtype=np.uint8)
    start = time.perf_counter()
    for i in range(0, n, 256):
        torch.from_numpy(data[i:i + 256]).float().div_(255.0)
    return n / (time.perf_counter() - start)


def main() -> None:
    from _shards import t91_images, write_shards

    from espcn_lab.data import DihedralAugment, resolve_shards, train_loader, train_pipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("shards", nargs="?")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    shards = args.shards or write_shards(Path(tempfile.mkdtemp()) / "t91", t91_images(ROOT.parent / "shared" / "data", 91),
                                         scale=3, n_shards=4)
    urls, _ = resolve_shards(str(shards))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
          f"torch {torch.__version__}; shards {shards}")
    print(f"ceiling (uint8->float32 of x3 pairs only): {ceiling(17 * 17 + 51 * 51):,.0f} pairs/s")
    for workers in args.workers:
        for batch in (256, 1024):
            loader = train_loader(train_pipeline(urls, batch, shuffle_buffer=20000), workers, 10**9)
            rate = pairs_per_second(loader, max(20, args.batches * 256 // batch))
            print(f"workers={workers} batch={batch}: {rate:,.0f} pairs/s ({rate / 200_000:.2f}x the 200k goal)")
    loader = train_loader(train_pipeline(urls, 256, shuffle_buffer=20000), 0, 10**9)
    rate = pairs_per_second(loader, args.batches, DihedralAugment(0))
    print(f"workers=0 batch=256 + flips/rotations on this CPU (on a GPU they run there): {rate:,.0f} pairs/s")


if __name__ == "__main__":
    main()
