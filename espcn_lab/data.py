"""Training data: a WebDataset stream of LR/HR patch stacks, and the LightningDataModule.

Throughput comes from never touching single pairs in Python: whole stacks (one source image each)
are queued as zero-copy views of the memory-mapped shard, shuffled batches are drawn by random index
from a pool they refill, and the uint8 -> float conversion and the random flips/rotations
(``DihedralAugment``, one gather per batch) happen on the training device
(``ESPCNModule.on_after_batch_transfer``), which also moves 4x fewer bytes to the GPU.
Every rank sees an endless stream (its own shards repeated, or resampled shards when there are fewer
shards than readers) cut into epochs of the same number of batches with ``WebLoader.with_epoch``, so
DDP ranks never wait on each other at an epoch end.
"""

from __future__ import annotations

import collections
import glob
import itertools
import math
import queue
import re
import threading
import warnings
from pathlib import Path
from typing import Iterator, Optional

import lightning as L
import numpy as np
import torch
import webdataset as wds

from espcn_lab.config import Config
from espcn_lab.dihedral import COUNT, dihedral
from espcn_lab.errors import UserError
from espcn_lab.hr_images import make_eval_pair, iter_hr_images
from espcn_lab.imaging import DegradationSpec
from espcn_lab.shard_format import MANIFEST_NAME, read_manifest
from espcn_lab.shard_reader import read_stacks

_REMOTE = re.compile(r"^(pipe:|[a-z0-9+]+://)")


# ---------------------------------------------------------------- where the shards are
def _expand_one(spec: str) -> tuple[list[str], Optional[Path]]:
    """One entry of data.train_shards -> (urls, folder that may hold the manifest)."""
    if _REMOTE.match(spec):
        return [spec], None
    path = Path(spec)
    if path.is_dir():
        try:
            names = [s["name"] for s in read_manifest(path)["splits"]["train"]["shards"]]
        except (FileNotFoundError, KeyError):
            names = sorted(p.name for p in path.glob("train-*.tar")) or sorted(p.name for p in path.glob("*.tar"))
        return [str(path / n) for n in names], path
    if "{" in spec:
        urls = list(wds.shardlists.expand_urls(spec))
    elif any(c in spec for c in "*?["):
        urls = sorted(glob.glob(spec))
    else:
        urls = [spec]
    return [u for u in urls if Path(u).is_file()], Path(urls[0]).parent if urls else path.parent


def resolve_shards(train_shards: str | list[str]) -> tuple[list[str], Optional[dict]]:
    """data.train_shards (folder, glob, brace pattern, list, URL) -> (shard urls, manifest or None)."""
    specs = [train_shards] if isinstance(train_shards, str) else list(train_shards)
    if not any(s.strip() for s in specs):
        raise UserError("data.train_shards is empty (give a shard folder, glob, brace pattern, list or URL)")
    urls, manifest = [], None
    for spec in specs:
        found, folder = _expand_one(spec.strip())
        if not found:
            raise UserError(f"data.train_shards: no shards found at {spec}")
        urls += found
        if manifest is None and folder is not None and (folder / MANIFEST_NAME).is_file():
            manifest = read_manifest(folder)
    return urls, manifest


def degradation_from_manifest(manifest: Optional[dict]) -> DegradationSpec:
    """The degradation the shards were made with; bicubic (with a warning) when unknown."""
    if manifest is None:
        warnings.warn("no shard manifest found: assuming the bicubic degradation for validation", stacklevel=2)
        return DegradationSpec()
    return DegradationSpec(**manifest["degradation"])


def check_manifest(manifest: Optional[dict], cfg: Config) -> None:
    """Shards must match the model's scale and channels."""
    if manifest is None:
        return
    if manifest.get("scale") not in (None, cfg.model.scale):
        raise UserError(f"shards are x{manifest['scale']} but model.scale is {cfg.model.scale}")
    channels = {"y": 1, "rgb": 3}.get(manifest.get("channels"), cfg.model.channels)
    if channels != cfg.model.channels:
        raise UserError(f"shards hold {manifest['channels']} patches but model.channels is {cfg.model.channels}")


def manifest_pairs(manifest: Optional[dict]) -> int:
    """Training pairs listed in the manifest (0 when unknown)."""
    try:
        return int(manifest["splits"]["train"]["pairs"])
    except (TypeError, KeyError):
        return 0


# ---------------------------------------------------------------- the stream
def _reader() -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


def shard_stream(urls: list[str], rank: int, world_size: int, seed: list[int]) -> Iterator[dict[str, str]]:
    """Endless shard urls for this rank and worker: a disjoint share reshuffled each pass, or resampled."""
    worker, workers = _reader()
    reader = rank * workers + worker
    rng = np.random.default_rng([*seed, reader])
    mine = urls[reader:: world_size * workers] if len(urls) >= world_size * workers else []
    while True:
        if mine:
            order = rng.permutation(len(mine))
            yield from ({"url": mine[i]} for i in order)
        else:  # fewer shards than readers: sample with replacement so nobody starves
            yield {"url": urls[rng.integers(len(urls))]}


def _to_tensors(lq: np.ndarray, gt: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, h, w[, 3]) uint8 arrays -> (B, C, h, w) uint8 tensors."""
    def one(a):
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()
    return one(lq), one(gt)


class PairPool:
    """A shuffle buffer of ``capacity`` pair slots: each pair is copied twice, never per pair in Python.

    Arriving stacks are queued as they are (zero-copy views of the memory-mapped shard). A batch is
    ``batch_size`` slots drawn uniformly without replacement from the full pool (the distribution of a
    sliding shuffle buffer; one gather), and the freed slots are refilled straight from the queue, oldest
    pairs first (a scatter per queued stack touched), so nothing is ever staged or compacted.
    """

    def __init__(self, capacity: int, rng: np.random.Generator):
        self.capacity, self.rng = capacity, rng
        self.filled = 0  # slots holding a pair (== capacity once warm)
        self.lq: Optional[np.ndarray] = None
        self.gt: Optional[np.ndarray] = None
        self.queue: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque()
        self.offset = 0  # pairs of queue[0] already moved into the pool
        self.staged = 0  # pairs waiting in the queue

    def add(self, lq: np.ndarray, gt: np.ndarray) -> None:
        if self.lq is None:
            self.lq, self.gt = (np.empty((self.capacity, *a.shape[1:]), a.dtype) for a in (lq, gt))
        if self.filled < self.capacity:  # warm-up: fill the slots in order
            n = min(len(lq), self.capacity - self.filled)
            self.lq[self.filled:self.filled + n], self.gt[self.filled:self.filled + n] = lq[:n], gt[:n]
            self.filled += n
            lq, gt = lq[n:], gt[n:]
        if len(lq):
            self.queue.append((lq, gt))
            self.staged += len(lq)

    def ready(self, batch_size: int) -> bool:
        """A batch can leave and its slots be refilled at once."""
        return self.filled == self.capacity and self.staged >= batch_size

    def take(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``batch_size`` random pairs out; as many queued pairs (oldest first) into their slots."""
        idx = self.rng.choice(self.capacity, batch_size, replace=False)
        batch = np.take(self.lq, idx, axis=0), np.take(self.gt, idx, axis=0)  # one gather each, fresh arrays
        done = 0
        while done < batch_size:
            lq, gt = self.queue[0]
            n = min(batch_size - done, len(lq) - self.offset)
            slots, new = idx[done:done + n], slice(self.offset, self.offset + n)
            self.lq[slots], self.gt[slots] = lq[new], gt[new]
            done, self.offset = done + n, self.offset + n
            if self.offset == len(lq):
                self.queue.popleft()
                self.offset = 0
        self.staged -= batch_size
        return batch

    def drain(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything left (pool and queue), shuffled: the end of a finite stream."""
        if self.lq is None:
            return np.empty((0,), np.uint8), np.empty((0,), np.uint8)
        parts = [(self.lq[: self.filled], self.gt[: self.filled])]
        for i, (lq, gt) in enumerate(self.queue):
            start = self.offset if i == 0 else 0
            parts.append((lq[start:], gt[start:]))
        lq, gt = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
        order = self.rng.permutation(len(lq))
        self.filled, self.offset, self.staged = 0, 0, 0
        self.queue.clear()
        return lq[order], gt[order]


def shuffled_batches(stacks: Iterator[tuple[np.ndarray, np.ndarray]], batch_size: int, buffer_pairs: int,
                     seed: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Stacks of pairs -> shuffled (B, C, h, w) uint8 batches drawn from a pool of ``buffer_pairs`` pairs.

    Augmentation is not done here: flips/rotations run on the training device
    (``ESPCNModule.on_after_batch_transfer``), where they cost one gather per batch.
    """
    pool = PairPool(max(buffer_pairs, batch_size), np.random.default_rng([*seed, 7]))
    for lq, gt in stacks:
        pool.add(lq, gt)
        while pool.ready(batch_size):
            yield _to_tensors(*pool.take(batch_size))
    lq, gt = pool.drain()  # a finite stream ends with what is left (full batches only)
    for start in range(0, len(lq) - batch_size + 1, batch_size):
        yield _to_tensors(lq[start:start + batch_size], gt[start:start + batch_size])


def dihedral_index(height: int, width: int, device=None) -> torch.Tensor:
    """(8, H*W) gather indices of the 8 flips/90-degree rotations of an H x W square (H == W)."""
    if height != width:
        raise ValueError("flips and rotations of non-square patches are not supported")
    grid = torch.arange(height * width, device=device).view(height, width)
    return torch.stack([dihedral(grid, t).reshape(-1) for t in range(COUNT)])


class DihedralAugment:
    """Random flips/90-degree rotations of (lq, gt) batches on their device: one gather per tensor.

    Each pair gets its own of the 8 transforms; LR and HR get the same one, so they stay aligned.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.generator: Optional[torch.Generator] = None
        self.index: dict[tuple, torch.Tensor] = {}

    def _indices(self, shape: tuple[int, int], device) -> torch.Tensor:
        key = (*shape, str(device))
        if key not in self.index:
            self.index[key] = dihedral_index(*shape, device=device)
        return self.index[key]

    def __call__(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.generator is None or self.generator.device != lq.device:
            self.generator = torch.Generator(device=lq.device).manual_seed(self.seed)
        which = torch.randint(0, COUNT, (len(lq),), device=lq.device, generator=self.generator)

        def apply(x):
            b, c, h, w = x.shape
            idx = self._indices((h, w), x.device)[which]  # (B, H*W)
            flat = x.reshape(b, c, h * w)
            return torch.gather(flat, 2, idx[:, None, :].expand(b, c, h * w)).view(b, c, h, w)

        return apply(lq), apply(gt)


def train_pipeline(urls: list[str], batch_size: int, *, shuffle_buffer: int = 10000, seed: int = 0, rank: int = 0,
                   world_size: int = 1) -> wds.DataPipeline:
    """Endless WebDataset pipeline of (lq, gt) uint8 batches (B, C, 17, 17) / (B, C, 17s, 17s).

    Random streams differ per rank, worker and pass (a pass restarts every epoch), and are fixed by ``seed``.
    """
    passes, current = itertools.count(), {}

    def shards():
        worker, _ = _reader()
        current["seed"] = [seed, rank, worker, next(passes), torch.initial_seed() % 2**32]
        return shard_stream(urls, rank, world_size, current["seed"])

    def batches(src):
        return shuffled_batches(src, batch_size, shuffle_buffer, current["seed"])

    return wds.DataPipeline(shards, read_stacks, batches)


def train_loader(pipeline: wds.DataPipeline, num_workers: int, batches_per_epoch: int):
    """Exactly ``batches_per_epoch`` batches per epoch on every rank.

    With worker processes: a WebLoader (the workers read ahead). Without: the same WebLoader iterated by a
    background thread (``BackgroundBatches``), so reading and shuffling overlap the training step.
    """
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                           persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
    loader = loader.with_epoch(batches_per_epoch)
    return loader if num_workers > 0 else BackgroundBatches(loader)


_END = object()


class BackgroundBatches:
    """Iterate ``source`` in a background thread, up to ``depth`` items ahead of the consumer.

    numpy and torch release the GIL for the copies that make a batch, so on a machine with a spare core
    the loader runs beside the training step. Items keep their order (the stream stays seeded and
    reproducible); an exception in the reader is raised in the consumer; a consumer that stops early
    (a ``break``, an interrupted fit) stops the thread.
    """

    def __init__(self, source, depth: int = 4):
        self.source, self.depth = source, depth

    def __iter__(self):
        items: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for item in self.source:
                    if not put((item, None)):
                        return
                put((_END, None))
            except BaseException as err:  # handed to the consumer, raised there
                put((_END, err))

        thread = threading.Thread(target=read, name="espcn-lab-batches", daemon=True)
        thread.start()
        try:
            while True:
                item, err = items.get()
                if item is _END:
                    if err is not None:
                        raise err
                    return
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)


# ---------------------------------------------------------------- validation
class ValidationImages(torch.utils.data.Dataset):
    """Protocol pairs of every val folder: item = (set index, lq (C, h, w) uint8, gt_y (H, W) uint8)."""

    def __init__(self, val_dirs: dict[str, str], scale: int, degradation: DegradationSpec, channels: int):
        self.set_names = list(val_dirs)
        self.items = []
        for index, (name, folder) in enumerate(val_dirs.items()):
            for image_name, hr in iter_hr_images(folder):
                pair = make_eval_pair(image_name, hr, scale, degradation, channels)
                lq = torch.from_numpy(pair.lq)
                lq = lq[None] if lq.ndim == 2 else lq.permute(2, 0, 1).contiguous()
                self.items.append((index, lq, torch.from_numpy(pair.gt_y)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


class ShardDataModule(L.LightningDataModule):
    """Train stream from ``data.train_shards``, validation on ``data.val_dirs``; checks input eagerly."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.urls, self.manifest = resolve_shards(cfg.data.train_shards)
        check_manifest(self.manifest, cfg)
        self.degradation = degradation_from_manifest(self.manifest)
        self.samples_per_epoch = cfg.data.samples_per_epoch or manifest_pairs(self.manifest)
        if self.samples_per_epoch <= 0:
            raise UserError("data.samples_per_epoch must be set when the shards have no manifest")
        if not cfg.data.val_dirs:
            raise UserError("data.val_dirs is empty: give at least one NAME=folder of HR images")
        for name, folder in cfg.data.val_dirs.items():  # fail now, not after the first epoch
            from espcn_lab.hr_images import list_hr_files
            try:
                list_hr_files(folder)
            except UserError as err:
                raise UserError(f"data.val_dirs.{name}: {err}") from None
        self.val_set: Optional[ValidationImages] = None

    def batches_per_epoch(self, world_size: int) -> int:
        return max(1, math.ceil(self.samples_per_epoch / (self.cfg.data.batch_size * world_size)))

    def setup(self, stage: str) -> None:
        if self.val_set is None:
            c = self.cfg
            self.val_set = ValidationImages(c.data.val_dirs, c.model.scale, self.degradation, c.model.channels)

    def train_dataloader(self):
        d, trainer = self.cfg.data, self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        pipeline = train_pipeline(self.urls, d.batch_size, shuffle_buffer=d.shuffle_buffer, seed=self.cfg.run.seed,
                                  rank=rank, world_size=world)
        return train_loader(pipeline, d.num_workers, self.batches_per_epoch(world))

    def val_dataloader(self):
        # every rank scores every image (benchmark sets are small), so logged values agree across ranks
        return torch.utils.data.DataLoader(self.val_set, batch_size=1, shuffle=False, num_workers=0)
