"""``espcn-lab prep``: options, validation and the parallel build loop (workers decode and cut, the
main process writes shards in a fixed order).

Workers get one image per task (any number of workers keeps busy even on a one-shard dataset) and
return encoded samples; results come back in task order through a bounded window, so memory stays
flat and the shard bytes do not depend on ``--workers``. Only the main process touches the output.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from tqdm import tqdm

from data_prep.patches import PatchSpec, extract_pairs, paper_stride
from data_prep.shards import (
    ShardWriter,
    build_manifest,
    plan_shards,
    prepare_folder,
    shard_info,
    write_manifest,
)
from data_prep.sources import (
    IMAGENET_DEFAULT_IMAGES,
    FolderSource,
    HFSource,
    parse_part,
    select,
)
from espcn_lab import __version__
from espcn_lab.errors import UserError, write_error
from espcn_lab.imaging.colour import GREY_POLICIES
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.imaging.read import DEFAULT_MAX_PIXELS, ImageError, read_image
from espcn_lab.shards.format import encode_sample

# Options that do not change a single output byte (everything else must match to resume a folder).
NOT_IN_IDENTITY = ("out", "imagenet_dir", "image_dir", "hf_dataset", "hf_streaming", "workers", "part",
                   "overwrite", "progress")


@dataclass(frozen=True)
class PrepOptions:
    """Every ``espcn-lab prep`` argument (see the CLI help for their meaning)."""

    out: Path
    scale: int = 3
    imagenet_dir: Optional[Path] = None
    image_dir: Optional[Path] = None
    hf_dataset: Optional[str] = None
    hf_split: str = "train"
    hf_image_column: str = "image"
    hf_streaming: bool = False
    num_images: Optional[int] = None
    val_images: int = 0
    seed: int = 0
    channels: str = "y"
    lq_patch: int = 17
    stride: Optional[int] = None
    degradation: str = "bicubic"
    sigma: Optional[float] = None
    hr_scales: Optional[tuple[float, ...]] = None
    grey: str = "values"
    images_per_shard: int = 500
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: Optional[int] = None
    part: str = "0/1"
    overwrite: bool = False
    progress: bool = True


def patch_spec(opts: PrepOptions) -> PatchSpec:
    """Validate the patch/degradation options (UserError naming the option)."""
    checks = [(2 <= opts.scale <= 8, f"--scale must be an integer from 2 to 8, got {opts.scale}"),
              (opts.channels in ("y", "rgb"), f"--channels must be y or rgb, got {opts.channels!r}"),
              (opts.grey in GREY_POLICIES, f"--grey must be {' or '.join(GREY_POLICIES)}, got {opts.grey!r}"),
              (opts.degradation in ("bicubic", "gaussian"),
               f"--degradation must be bicubic or gaussian, got {opts.degradation!r}"),
              (opts.sigma is None or opts.degradation == "gaussian", "--sigma only applies to --degradation gaussian"),
              (opts.sigma is None or opts.sigma > 0, f"--sigma must be > 0, got {opts.sigma}"),
              (opts.lq_patch >= 3, f"--lq-patch must be >= 3, got {opts.lq_patch}"),
              (opts.stride is None or opts.stride >= 1, f"--stride must be >= 1, got {opts.stride}"),
              (opts.images_per_shard >= 1, f"--images-per-shard must be >= 1, got {opts.images_per_shard}"),
              (opts.val_images >= 0, f"--val-images must be >= 0, got {opts.val_images}"),
              (opts.num_images is None or opts.num_images >= 1, f"--num-images must be >= 1, got {opts.num_images}"),
              (opts.workers is None or opts.workers >= 1, f"--workers must be >= 1, got {opts.workers}"),
              (opts.max_pixels >= 1, f"--max-pixels must be >= 1, got {opts.max_pixels}"),
              (opts.hr_scales is None or (len(opts.hr_scales) > 0 and all(0 < f <= 1 for f in opts.hr_scales)),
               f"--hr-scales: factors must be in (0, 1] (the source is only ever shrunk), got {opts.hr_scales}")]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    stride = opts.stride if opts.stride is not None else paper_stride(opts.lq_patch)
    if stride < 1:
        raise UserError(f"--lq-patch {opts.lq_patch} is too small for the paper's stride formula; pass --stride")
    spec = PatchSpec(opts.scale, opts.channels, opts.lq_patch, stride, DegradationSpec(opts.degradation, opts.sigma),
                     tuple(opts.hr_scales) if opts.hr_scales is not None else None, opts.grey)
    return dataclasses.replace(spec, degradation=spec.resolved_degradation())


def open_source(opts: PrepOptions):
    given = [o for o in ("imagenet_dir", "image_dir", "hf_dataset") if getattr(opts, o) is not None]
    if len(given) != 1:
        raise UserError("give exactly one source: --imagenet-dir, --image-dir or --hf-dataset")
    if opts.hf_dataset is not None:
        return HFSource(opts.hf_dataset, opts.hf_split, opts.hf_image_column, opts.hf_streaming)
    return FolderSource(opts.imagenet_dir or opts.image_dir, imagenet=opts.imagenet_dir is not None)


def run_prep(opts: PrepOptions) -> dict[str, Any]:
    """Build (or resume) the shards of this part; write the manifest once every shard exists."""
    spec, part = patch_spec(opts), parse_part(opts.part)
    source = open_source(opts)
    listing = source.listing()
    available = len(listing.refs) - opts.val_images
    num_images = opts.num_images or (min(IMAGENET_DEFAULT_IMAGES, available) if source.kind == "imagenet" else available)
    plans = plan_shards(select(len(listing.refs), num_images, opts.val_images, opts.seed), listing.refs,
                        opts.images_per_shard)
    arguments = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                 for k, v in asdict(opts).items()}  # as JSON stores them, so a resume compares equal
    identity = {k: v for k, v in arguments.items() if k not in NOT_IN_IDENTITY}
    identity.update(num_images=num_images, stride=spec.stride, sigma=spec.degradation.sigma, source_kind=source.kind,
                    listed=len(listing.refs), listing_sha256=listing.digest, tool_version=__version__)
    folder = Path(opts.out)
    prepare_folder(folder, identity, opts.overwrite)
    mine = [p for g, p in enumerate(plans) if g % part[1] == part[0]]
    todo = [p for p in mine if shard_info(folder, p) is None]
    start = time.perf_counter()
    stats = build_shards(folder, todo, source, spec, opts)
    stats.update(seconds=time.perf_counter() - start, shards_built=len(todo), shards_reused=len(mine) - len(todo))
    infos = [shard_info(folder, p) for p in plans]
    header = {"tool": "espcn-lab", "tool_version": __version__, "created_by": "espcn-lab prep",
              "arguments": arguments, "source": source.describe(), "listing_sha256": listing.digest,
              "scale": spec.scale, "channels": spec.channels, "lq_patch": spec.lq_patch, "gt_patch": spec.gt_patch,
              "stride": spec.stride, "degradation": spec.degradation.to_dict(), "seed": opts.seed,
              "hr_scales": list(spec.hr_scales) if spec.hr_scales is not None else None, "grey": spec.grey,
              "images_per_shard": opts.images_per_shard}
    if all(infos):
        manifest = build_manifest(header, infos, len(listing.refs), listing.ignored)
        path = write_manifest(folder, manifest)
        _refuse_no_pairs(manifest, spec, folder)
        return {**stats, "complete": True, "manifest": str(path)}
    done = [shard_info(folder, p) for p in mine]
    name = f"{opts.part.replace('/', '-of-')}.json"
    path = write_manifest(folder / ".prep", build_manifest({**header, "part": opts.part}, done, len(listing.refs),
                                                           listing.ignored), f"part-{name}")
    missing = sum(info is None for info in infos)
    return {**stats, "complete": False, "manifest": str(path), "shards_missing": missing}


def _refuse_no_pairs(manifest: dict[str, Any], spec: PatchSpec, folder: Path) -> None:
    """A finished dataset with no training pair is an error (exit 2), not a success: ``prep && fit`` stops here.

    The shards and manifest stay (rerunning the same command is instant and says the same), and ``fit``
    refuses such a folder in one line too.
    """
    train = manifest["splits"].get("train", {"pairs": 0})
    if train["pairs"] or not manifest["counts"]["selected"]:
        return
    counts = manifest["counts"]
    skipped = ", ".join(f"{n} {why}" for why, n in counts["skipped"].items()) or "none"
    raise UserError(f"prep cut 0 training pairs from {counts['selected']} images (skipped: {skipped}; an image needs "
                    f"at least {spec.gt_patch}x{spec.gt_patch} HR pixels for one pair); {folder} holds nothing to "
                    "train on: use larger images or a smaller --lq-patch")


def build_shards(folder: Path, todo: list, source, spec: PatchSpec, opts: PrepOptions) -> dict[str, int]:
    """Process every image of ``todo`` shards, writing each shard as soon as its last image is back."""
    workers = opts.workers or os.cpu_count() or 1
    remaining = {k: len(plan.items) for k, plan in enumerate(todo)}
    writers: dict[int, ShardWriter] = {}
    stats = {"images": 0, "pairs": 0, "skipped": 0, "workers": workers}
    bar = tqdm(total=sum(remaining.values()), unit="img", dynamic_ncols=True, disable=not opts.progress or None,
               desc="prep", file=sys.stderr)
    try:
        for (k, split, index, ref, _), result in _results(_jobs(todo, source), source, spec, opts, workers):
            writer = writers.get(k) or writers.setdefault(k, ShardWriter(folder, todo[k]))
            if result[0] == "ok":
                writer.add(result[1], result[2])
                stats["pairs"] += result[2]
            else:
                writer.skip(ref, result[1], result[2])
                stats["skipped"] += 1
                bar.write(f"warning: skipped {split} image {ref}: {result[1]}: {result[2]}", file=sys.stderr)
            stats["images"] += 1
            remaining[k] -= 1
            if remaining[k] == 0:
                writers.pop(k).finish()
            bar.update(1)
            bar.set_postfix(pairs=stats["pairs"], skipped=stats["skipped"], refresh=False)
    except OSError as err:  # a full or read-only disk: the shards already finished stay valid
        done = sum(v == 0 for v in remaining.values())
        raise write_error(err, f"{folder}: cannot write shards ({err.strerror or err}); the {done} finished this "
                               "run are kept: free space and rerun the same command to resume") from None
    finally:
        bar.close()
        for writer in writers.values():
            writer.abort()
    if any(remaining.values()):
        raise UserError(f"the source ended early: {sum(remaining.values())} selected images never arrived")
    return stats


def _jobs(todo: list, source) -> Iterator[tuple]:
    """(shard position, split, listing index, ref, bytes or None) in writing order."""
    if source.random_access:
        for k, plan in enumerate(todo):
            for index, ref in plan.items:
                yield k, plan.split, index, ref, None
        return
    owner = {index: (k, plan.split, ref) for k, plan in enumerate(todo) for index, ref in plan.items}
    last = max(owner, default=-1)
    for row, data in source.stream() if owner else ():
        if row in owner:
            yield (*owner[row][:2], row, owner[row][2], data)
        if row >= last:
            break


def _results(jobs: Iterator[tuple], source, spec: PatchSpec, opts: PrepOptions, workers: int):
    """(job, result) in job order; at most ``4 * workers`` jobs in flight."""
    if workers == 1:
        _init_worker(source, spec, opts.max_pixels)
        yield from ((job, process_image(job)) for job in jobs)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    # concurrent.futures, not multiprocessing.Pool: Pool.terminate() can deadlock when the consumer stops
    # with tasks in flight (a full disk mid-run hung prep for good); this shutdown waits for at most the
    # window of queued images and cancels the rest
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(source, spec, opts.max_pixels))
    pending: deque = deque()
    try:
        for job in jobs:
            pending.append((job, pool.submit(process_image, job)))
            if len(pending) >= 4 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER: dict[str, Any] = {}


def _init_worker(source, spec: PatchSpec, max_pixels: int) -> None:
    _WORKER.update(source=source, spec=spec, max_pixels=max_pixels)


def process_image(job: tuple) -> tuple:
    """One image -> ("ok", tar members, pairs) or ("skip", reason, message). Runs in a worker."""
    _, split, index, ref, data = job
    spec: PatchSpec = _WORKER["spec"]
    try:
        img = read_image(data if data is not None else _WORKER["source"].fetch(ref), grey="keep",
                         max_pixels=_WORKER["max_pixels"]).pixels  # (H, W) grey or (H, W, 3) RGB; prepare_hr converts
    except ImageError as skip:
        return "skip", skip.reason, skip.message
    except OSError as err:
        return "skip", "unreadable", str(err)
    lq, gt, positions = extract_pairs(img, spec)
    if len(positions) == 0:
        h, w = img.shape[:2]
        return "skip", "too_small", f"{w}x{h} is smaller than one {spec.gt_patch}x{spec.gt_patch} HR patch"
    meta = {"source": ref, "listing_index": index, "split": split, "scale": spec.scale, "channels": spec.channels,
            "lq_patch": spec.lq_patch, "positions": positions.tolist(), "hr_size": [img.shape[0], img.shape[1]]}
    if spec.hr_scales is not None:
        meta["hr_scales"] = list(spec.hr_scales)
    return "ok", encode_sample(f"img{index:08d}", lq, gt, meta), len(positions)
