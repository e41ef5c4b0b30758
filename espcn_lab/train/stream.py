"""The training stream: shard urls per rank and reader, the WebDataset pipeline of shuffled uint8 batches
and the loader that cuts it into equal epochs.

Every rank sees an endless stream (its own shards repeated, or resampled shards when there are fewer
shards than readers) cut into epochs of the same number of batches with ``WebLoader.with_epoch``, so
DDP ranks never wait on each other at an epoch end. Without worker processes a background thread
(``BackgroundBatches``) reads and shuffles beside the training step.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import threading
import time
from typing import Iterator, Optional

import numpy as np
import torch
import webdataset as wds

from espcn_lab.shards.reader import read_stacks
from espcn_lab.train.pool import shuffled_batches


def _reader() -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


def _share(urls: list[str], reader: int, readers: int) -> list[str]:
    """This reader's disjoint share of the shards, or [] when there are fewer shards than readers."""
    return urls[reader::readers] if len(urls) >= readers else []


def failure_bound(urls: list[str], reader: int, readers: int) -> int:
    """Shard reads in a row that may give no pair before the stream gives up (``read_stacks``).

    A share is read as a fresh permutation every pass, so 2 x its size consecutive empty reads cover one
    whole pass: every shard of it is broken or empty. Resampled shards (fewer shards than readers) are
    drawn with replacement: 10 x the shard count misses a good shard with probability below e^-10.
    """
    mine = _share(urls, reader, readers)
    return 2 * len(mine) if mine else 10 * len(urls)


def shard_stream(urls: list[str], rank: int, world_size: int, seed: list[int]) -> Iterator[dict[str, str]]:
    """Endless shard urls for this rank and worker: a disjoint share reshuffled each pass, or resampled."""
    worker, workers = _reader()
    reader = rank * workers + worker
    rng = np.random.default_rng([*seed, reader])
    mine = _share(urls, reader, world_size * workers)
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
    Shards that give no pair for a whole pass end the stream with ``ShardStreamError`` (never a busy loop).
    """
    passes, current, warned = itertools.count(), {}, set()  # warned: broken shards reported (once each)

    def shards():
        worker, workers = _reader()
        current["seed"] = [seed, rank, worker, next(passes), torch.initial_seed() % 2**32]
        current["bound"] = failure_bound(urls, rank * workers + worker, world_size * workers)
        return shard_stream(urls, rank, world_size, current["seed"])

    def stacks(src):
        return read_stacks(src, max_failures=current["bound"], warned=warned)

    def batches(src):
        return shuffled_batches(src, batch_size, shuffle_buffer, current["seed"])

    return wds.DataPipeline(shards, stacks, batches)


READER_GRACE_S = 10.0


def _reader_sigterm(_signum, _frame) -> None:
    def end() -> None:
        time.sleep(READER_GRACE_S)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=end, daemon=True).start()


def _quiet_worker(_worker_id: int) -> None:
    """Reader processes leave signals to the training process, which stops them in order. A terminal sends
    Ctrl-C to the whole process group (ignored here); SLURM and ``kill -TERM -PGID`` send SIGTERM to every
    process: a reader then serves batches for ``READER_GRACE_S`` more seconds, time for the training
    process to reach a step boundary and save, and exits (multiprocessing's own SIGTERM at exit, for a
    reader nobody shut down, waits that long too)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _reader_sigterm)


def train_loader(pipeline: wds.DataPipeline, num_workers: int, batches_per_epoch: int,
                 first_epoch: Optional[int] = None):
    """Exactly ``batches_per_epoch`` batches per epoch on every rank (``first_epoch`` in the first one: what
    is left of the epoch a resumed run stopped in).

    With worker processes: a WebLoader (the workers read ahead). Without: the same WebLoader iterated by a
    background thread (``BackgroundBatches``), so reading and shuffling overlap the training step.
    """
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                           persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None,
                           worker_init_fn=_quiet_worker if num_workers > 0 else None)
    epochs = Epochs(loader, batches_per_epoch, first_epoch)
    return epochs if num_workers > 0 else BackgroundBatches(epochs)


class Epochs:
    """``loader`` cut into epochs of ``batches`` batches, the first of ``first`` batches when given.

    Lightning ends an epoch of an iterable loader when the loader does; a run resumed in the middle of an
    epoch (Lightning restores how many batches it had done) must get only the rest of it, or it would
    train more steps than the same run uninterrupted.
    """

    def __init__(self, loader: wds.WebLoader, batches: int, first: Optional[int] = None):
        self.loader, self.batches, self.first = loader, batches, first

    def __iter__(self):
        count, self.first = self.first or self.batches, None
        return iter(self.loader.with_epoch(count))

    def close(self) -> None:
        """End the reader processes now: persistent workers otherwise live until the interpreter exits, where
        multiprocessing stops them with SIGTERM (which a reader takes ``READER_GRACE_S`` to obey)."""
        for stage in self.loader.pipeline:
            iterator = getattr(stage, "_iterator", None)  # a DataLoader's persistent worker iterator
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
                stage._iterator = None


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

    def close(self) -> None:
        if hasattr(self.source, "close"):
            self.source.close()

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
