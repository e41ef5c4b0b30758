"""Training-stream throughput: pairs/s into batched float tensors (goal >= 200,000 on the 2-core dev box).

    python benchmarks/bench_loader.py [--shards DIR ...] [--images 300] [--batches 300] [--repeat 3]

Shard sets, all x3 Y (built here unless given with --shards):
  t91       ../shared/data/T91 through `espcn-lab prep` (small images: ~27 pairs per stored stack);
  imagenet  ImageNet-like JPEGs (BSD200 photos at 500x375, quality 90, as in bench_prep.py) through
            `espcn-lab prep --imagenet-dir` (~88 pairs per stack, like the real training set).
For each set, in the same run and alternating `--repeat` times (median reported, so a busy neighbour
hits both alike):
  ours      the training pipeline (`train_pipeline` + `train_loader`, 0 workers, batch 256 and 1024):
            tar read, shuffle pool, uint8 batches in a background thread (`BackgroundBatches`), plus the
            uint8 -> float conversion the module does on the device, in the consumer thread; and the
            same with everything in one thread (one core's worth);
  stock     the plain WebDataset recipe: `WebDataset(urls).decode()`, unbatch stacks into pairs,
            `.shuffle(20000)`, `.batched(256)`, same float conversion;
  ceiling   just the float conversion of the same bytes (the work no loader can avoid).
Random flips/rotations run on the training device (`DihedralAugment`); their cost on this CPU is
printed on its own line. Worker processes: `--workers 1 2` adds them (on 2 cores they lose: the
hand-off costs more than the work).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from espcn_lab.paths import shared_data

ROOT = Path(__file__).resolve().parents[1]
GOAL = 200_000


def rate(batches, count: int, augment=None) -> float:
    it = iter(batches)
    next(it)  # fill the shuffle pool / start workers outside the timing
    start, seen = time.perf_counter(), 0
    for _, (lq, gt) in zip(range(count), it):
        if augment is not None:
            lq, gt = augment(lq, gt)
        lq, gt = lq.float().div_(255.0), gt.float().div_(255.0)  # what the module does on the device
        seen += len(lq)
    return seen / (time.perf_counter() - start)


def stock(urls: list[str], batch: int):
    """The plain WebDataset way: decode each sample, unbatch stacks to pairs, shuffle buffer, batch."""
    import webdataset as wds

    def pairs(src):
        for sample in src:
            lq, gt = sample["lq.npy"], sample["gt.npy"]
            if lq.ndim == 2:
                lq, gt = lq[None], gt[None]
            for i in range(len(lq)):
                yield torch.from_numpy(lq[i])[None], torch.from_numpy(gt[i])[None]

    return wds.DataPipeline(wds.ResampledShards(urls), wds.tarfile_to_samples(), wds.decode(), pairs,
                            wds.shuffle(20000, initial=20000), wds.batched(batch))


def ceiling(pair_bytes: int, n: int = 100_000) -> float:
    data = np.random.default_rng(0).integers(0, 255, (n, pair_bytes), dtype=np.uint8)
    start = time.perf_counter()
    for i in range(0, n, 256):
        torch.from_numpy(data[i:i + 256]).float().div_(255.0)
    return n / (time.perf_counter() - start)


def build(tmp: Path, images: int) -> dict[str, Path]:
    from bench_prep import make_jpegs

    from data_prep import PrepOptions, run_prep

    out = {}
    t91 = shared_data() / "T91"
    run_prep(PrepOptions(out=tmp / "t91", scale=3, image_dir=t91, workers=1, progress=False))
    out["t91"] = tmp / "t91"
    src = tmp / "imagenet" / "train"
    for k in range(10):
        (src / f"n{k:08d}").mkdir(parents=True)
    make_jpegs(src, images)
    run_prep(PrepOptions(out=tmp / "imagenet-x3", scale=3, imagenet_dir=src.parent, num_images=images,
                         images_per_shard=100, workers=2, progress=False))
    out["imagenet"] = tmp / "imagenet-x3"
    return out


def main() -> None:
    from bench_prep import cpu_model

    from espcn_lab.shards.locate import resolve_shards
    from espcn_lab.train.augment import DihedralAugment
    from espcn_lab.train.stream import train_loader, train_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", nargs="+", help="shard folders to measure instead of building t91 + imagenet")
    parser.add_argument("--images", type=int, default=300, help="ImageNet-like JPEGs to build shards from")
    parser.add_argument("--batches", type=int, default=300, help="batches of 256 timed per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="also measure with worker processes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        sets = {Path(s).name: Path(s) for s in args.shards} if args.shards else build(Path(tmp), args.images)
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, 1 torch thread (+ the reader thread), "
              f"torch {torch.__version__}; "
              f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        for name, folder in sets.items():
            urls, manifest = resolve_shards(str(folder))
            pairs = manifest["splits"]["train"]["pairs"] if manifest else "?"
            results: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                for batch in (256, 1024):
                    loader = train_loader(train_pipeline(urls, batch, shuffle_buffer=20000), 0, 10**9)
                    results.setdefault(f"ours batch={batch}", []).append(rate(loader, args.batches * 256 // batch))
                loader = train_loader(train_pipeline(urls, 256, shuffle_buffer=20000), 0, 10**9).source
                results.setdefault("ours batch=256, one thread", []).append(rate(loader, args.batches))
                results.setdefault("stock webdataset batch=256", []).append(rate(stock(urls, 256), args.batches // 4))
                results.setdefault("ceiling (float conversion only)", []).append(ceiling(17 * 17 + 51 * 51))
            loader = train_loader(train_pipeline(urls, 256, shuffle_buffer=20000), 0, 10**9)
            results["ours batch=256 + flips/rotations on this CPU"] = [rate(loader, args.batches, DihedralAugment(0))]
            for workers in args.workers:
                loader = train_loader(train_pipeline(urls, 256, shuffle_buffer=20000), workers, 10**9)
                results[f"ours batch=256 workers={workers}"] = [rate(loader, args.batches)]
            base = statistics.median(results["stock webdataset batch=256"])
            print(f"\n{name}: {len(urls)} shards, {pairs} pairs ({folder})")
            for label, values in results.items():
                r = statistics.median(values)
                print(f"  {label:48s} {r:>10,.0f} pairs/s  {r / base:5.1f}x stock  {r / GOAL:5.2f}x goal")


if __name__ == "__main__":
    main()
