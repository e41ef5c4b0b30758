"""The shuffle pool: stacks of pairs in, shuffled (B, C, h, w) uint8 batches out, never a pair at a time.

Whole stacks (one source image each) are queued as zero-copy views of the memory-mapped shard and
batches are drawn by random index from a pool they refill. The uint8 -> float conversion and the
flips/rotations happen later, on the training device (``ESPCNModule.on_after_batch_transfer``), which
also moves 4x fewer bytes to a GPU.
"""

from __future__ import annotations

import collections
from typing import Iterator, Optional

import numpy as np
import torch


def to_tensors(lq: np.ndarray, gt: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
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
            yield to_tensors(*pool.take(batch_size))
    lq, gt = pool.drain()  # a finite stream ends with what is left (full batches only)
    for start in range(0, len(lq) - batch_size + 1, batch_size):
        yield to_tensors(lq[start:start + batch_size], gt[start:start + batch_size])
