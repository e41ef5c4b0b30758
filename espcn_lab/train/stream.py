"""The training stream: shard urls per rank and reader, the WebDataset pipeline of shuffled uint8 batches
and the loader that cuts it into equal epochs.

Every rank sees an endless stream (its own shards repeated, or resampled shards when there are fewer
shards than readers) cut into epochs of the same number of batches with ``WebLoader.with_epoch``, so
DDP ranks never wait on each other at an epoch end. Without worker processes a background thread
(``BackgroundBatches``) reads and shuffles beside the training step.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Iterator

import numpy as np
import torch
import webdataset as wds

from espcn_lab.shards.reader import read_stacks
from espcn_lab.train.pool import shuffled_batches


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
