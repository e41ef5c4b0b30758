"""The LightningDataModule: the training stream from ``data.train_shards`` and the validation images of
``data.val_dirs``, both checked before anything starts.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from espcn_lab.config import Config
from espcn_lab.errors import UserError
from espcn_lab.evaluate.protocol import protocol_pairs
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.shards.locate import (
    check_manifest,
    check_pairs,
    degradation_from_manifest,
    manifest_pairs,
    readable_shards,
    resolve_shards,
)
from espcn_lab.train.stream import train_loader, train_pipeline


class ValidationImages(torch.utils.data.Dataset):
    """Protocol pairs of every ``data.val_dirs`` set, in config order: item = (set name, EvalPair)."""

    def __init__(self, val_dirs: dict[str, str], scale: int, degradation: DegradationSpec, channels: int):
        self.items = []
        for name, spec in val_dirs.items():
            try:
                self.items += [(name, pair) for pair in protocol_pairs(spec, scale, degradation, channels)]
            except UserError as err:
                raise UserError(f"data.val_dirs.{name}: {err}") from None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def _one(items: list):
    """Validation batches are single (name, EvalPair) items, left as they are (numpy, any size)."""
    return items[0]


class ShardDataModule(L.LightningDataModule):
    """Train stream from ``data.train_shards``, validation on ``data.val_dirs``; checks input eagerly."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.urls, self.manifest = resolve_shards(cfg.data.train_shards)
        check_manifest(self.manifest, cfg.model.scale, cfg.model.channels)
        check_pairs(self.manifest, cfg.data.train_shards)
        self.urls = readable_shards(self.urls)
        self.degradation = degradation_from_manifest(self.manifest)
        self.samples_per_epoch = cfg.data.samples_per_epoch or manifest_pairs(self.manifest)
        if self.samples_per_epoch <= 0:
            raise UserError("data.samples_per_epoch must be set when the shards have no manifest")
        if not cfg.data.val_dirs:
            raise UserError("data.val_dirs is empty: give at least one NAME=folder of HR images (or a shard folder with held-out images)")
        # read now: a missing or unreadable set fails before the run folder is written, not after an epoch
        self.val_set = ValidationImages(cfg.data.val_dirs, cfg.model.scale, self.degradation, cfg.model.channels)
        self.loaders: list = []

    def batches_per_epoch(self, world_size: int) -> int:
        return max(1, math.ceil(self.samples_per_epoch / (self.cfg.data.batch_size * world_size)))

    def train_dataloader(self):
        d, trainer = self.cfg.data, self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        pipeline = train_pipeline(self.urls, d.batch_size, shuffle_buffer=d.shuffle_buffer, seed=self.cfg.run.seed,
                                  rank=rank, world_size=world)
        per_epoch = self.batches_per_epoch(world)
        # > 0: resumed mid-epoch. `processed`, not `completed`: a checkpoint written in on_train_batch_end (the timed
        # last.ckpt) has the batch processed, and Lightning counts it completed only after this loader is made
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer else 0
        self.loaders.append(train_loader(pipeline, d.num_workers, per_epoch,
                                         per_epoch - done if 0 < done < per_epoch else None))
        return self.loaders[-1]

    def close(self) -> None:
        """Stop the reader processes of the training loaders made so far (at the end of ``fit``)."""
        while self.loaders:
            self.loaders.pop().close()

    def val_dataloader(self):
        # every rank scores every image (benchmark sets are small), so logged values agree across ranks
        return torch.utils.data.DataLoader(self.val_set, batch_size=1, shuffle=False, num_workers=0, collate_fn=_one)
