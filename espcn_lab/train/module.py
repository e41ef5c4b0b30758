"""LightningModule for ESPCN: the pixel loss (MSE by default), per-layer learning rates, the paper's schedule, validation by protocol.

Schedule (Sec. 3.2): start at ``optim.learning_rate``; whenever the epoch's training cost improves by
less than ``optim.plateau_threshold`` (relative) for ``optim.plateau_patience`` epochs, multiply the
rate by ``optim.lr_decay_factor``, never below ``optim.final_learning_rate``. The last layer always
learns ``optim.last_layer_lr_scale`` times slower. Early stopping lives in ``train.py``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from espcn_lab.config import Config, max_time_seconds, to_dict
from espcn_lab.evaluate.score import score_model
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import build_model
from espcn_lab.train.augment import DihedralAugment
from espcn_lab.train.distill import TeacherTargets

PLATEAU_MONITOR = "train/epoch_loss"


def pixel_loss(name: str, eps: float = 1e-3):
    """``optim.loss`` as a function ``(sr, target) -> mean loss``: mse, l1, or charbonnier ``sqrt(d^2 + eps^2)``."""
    if name == "mse":
        return F.mse_loss
    if name == "l1":
        return F.l1_loss
    if name == "charbonnier":
        return lambda sr, target: torch.sqrt((sr - target).square() + eps * eps).mean()
    raise ValueError(f"unknown loss {name!r}")


def _half_cosine(progress: float, floor: float) -> float:
    """Rate factor from 1 at ``progress`` 0 down half a cosine to ``floor`` at 1, and ``floor`` after."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class ESPCNModule(L.LightningModule):
    """Holds ``self.model`` (an ESPCN), so checkpoint weights are ``model.*``."""

    def __init__(self, cfg: Config, degradation: DegradationSpec, nan_check_every: int = 10):
        super().__init__()
        self.cfg, self.degradation = cfg, degradation
        self.model = build_model(cfg.model)
        self.nan_check_every = max(1, nan_check_every)
        self._loss = pixel_loss(cfg.optim.loss, cfg.optim.charbonnier_eps)
        self._bad_loss = None
        self._val_scores: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.augment: DihedralAugment | None = None  # made in on_train_start when data.augment
        self.teacher: TeacherTargets | None = None  # not an nn.Module, so not in the weights or checkpoints

    def set_teacher(self, teacher: torch.nn.Module | None) -> None:
        """The frozen model whose outputs are the second target (``optim.distill_*``); None: no distillation."""
        self.teacher = TeacherTargets(teacher) if teacher is not None else None

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) float in [0, 1] -> (B, C, h*s, w*s) float (unclamped)."""
        return self.model(lq)

    def on_train_start(self) -> None:
        if self.cfg.data.augment:  # a stream per rank; a resumed run (step restored by now) draws anew
            seed = np.random.SeedSequence([self.cfg.run.seed, self.global_rank, self.global_step]).generate_state(1)[0]
            self.augment = DihedralAugment(int(seed))

    def on_fit_start(self) -> None:
        teachers = [] if self.teacher is None else [self.teacher.teacher]
        for teacher in teachers:
            teacher.to(self.device)
        if self.cfg.trainer.channels_last:
            for model in (self.model, *teachers):
                model.to(memory_format=torch.channels_last)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Training batches travel as uint8 (4x fewer bytes); get the teacher's output (``optim.distill_from``,
        on the patches as stored), are flipped/rotated (``data.augment``) and become float in [0, 1] on the device."""
        if self.trainer is not None and self.trainer.training:
            lq, gt = batch
            extra = () if self.teacher is None else (self.teacher(lq),)
            if self.augment is not None:
                lq, gt, *extra = self.augment(lq, gt, *extra)
            fmt = torch.channels_last if self.cfg.trainer.channels_last else torch.contiguous_format
            return lq.float().div_(255.0).contiguous(memory_format=fmt), gt.float().div_(255.0), *extra
        return batch

    # ------------------------------------------------------------ training
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        lq, gt, *teacher = batch  # teacher: its output, when optim.distill_from names one
        border = self.model.receptive_radius() * self.model.scale if self.cfg.optim.valid_loss else 0
        inside = (..., slice(border, -border), slice(border, -border)) if border else (...,)
        sr = self.model.forward_valid(lq) if border else self.model(lq)
        loss = self._loss(sr, gt[inside])
        if teacher:
            w = self.cfg.optim.distill_weight
            self.log("train/hr_loss", loss.detach(), on_step=True, on_epoch=False)  # what runs without a teacher log
            loss = (1 - w) * loss + w * self._loss(sr, teacher[0][inside])
        self._check_finite(loss, batch_idx)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log(PLATEAU_MONITOR, loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def _check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Every few steps (a host sync), stop every rank together if the loss was ever non-finite."""
        bad = ~torch.isfinite(loss.detach())
        self._bad_loss = bad if self._bad_loss is None else self._bad_loss | bad
        if batch_idx % self.nan_check_every == 0:
            stop = self.trainer.strategy.reduce_boolean_decision(bool(self._bad_loss), all=False)
            self._bad_loss = None
            if stop:
                raise NonFiniteLossError(f"training loss became non-finite by step {self.global_step}")

    # ------------------------------------------------------------ validation
    def validation_step(self, batch, batch_idx: int) -> None:
        set_name, pair = batch  # one protocol pair (ValidationImages); scored exactly as `espcn-lab eval` scores it
        scores = score_model(self.model, pair, self.cfg.model.scale, self.device)
        self._val_scores[set_name].append((scores["psnr_y"], scores["ssim_y"]))

    def on_validation_epoch_end(self) -> None:
        means = {}
        for name in self.cfg.data.val_dirs:
            if self._val_scores.get(name):
                psnr, ssim = np.mean(self._val_scores[name], axis=0)
                means[name] = (float(psnr), float(ssim))
                self.log(f"val/{name}/psnr_y", float(psnr), sync_dist=True)
                self.log(f"val/{name}/ssim_y", float(ssim), sync_dist=True)
        if means:
            self.log("val/psnr_y", float(np.mean([m[0] for m in means.values()])), sync_dist=True, prog_bar=True)
            self.log("val/ssim_y", float(np.mean([m[1] for m in means.values()])), sync_dist=True)
        self._val_scores.clear()

    # ------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        o = self.cfg.optim
        convs = self.model.conv_layers()
        scales = [1.0] * (len(convs) - 1) + [o.last_layer_lr_scale]
        groups = [{"params": list(conv.parameters()), "lr": o.learning_rate * k, "name": f"layer{i + 1}"}
                  for i, (conv, k) in enumerate(zip(convs, scales))]
        extra = [p for m in self.model.body if m not in convs for p in m.parameters()]
        if extra:  # learnable activations (PReLU) learn with the first rate
            groups.append({"params": extra, "lr": o.learning_rate, "name": "activations"})
            scales.append(1.0)
        if o.name == "sgd":
            optimizer = torch.optim.SGD(groups, lr=o.learning_rate, momentum=o.momentum, weight_decay=o.weight_decay)
        elif o.name == "adam":
            optimizer = torch.optim.Adam(groups, lr=o.learning_rate, weight_decay=o.weight_decay)
        else:
            optimizer = torch.optim.AdamW(groups, lr=o.learning_rate, weight_decay=o.weight_decay)
        if o.schedule == "cosine":
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._cosine(optimizer), "interval": "epoch"}}
        if o.schedule == "cosine_time":
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": self._cosine_over_time(optimizer), "interval": "step"}}
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=o.lr_decay_factor, patience=o.plateau_patience,
            threshold=o.plateau_threshold, threshold_mode="rel", min_lr=[o.final_learning_rate * k for k in scales])
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": PLATEAU_MONITOR, "interval": "epoch"}}

    def _cosine(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """Every group from its start rate to ``final/initial`` of it over ``trainer.max_epochs`` (half a cosine)."""
        o, epochs = self.cfg.optim, max(1, self.cfg.trainer.max_epochs - 1)
        floor = o.final_learning_rate / o.learning_rate
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: _half_cosine(epoch / epochs, floor))

    def _cosine_over_time(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """The cosine of ``_cosine`` with the fraction of ``trainer.max_time`` spent as its position, times a
        linear warm-up from 1/N to 1 over the first ``optim.warmup_steps`` = N steps (none at 0).

        Elapsed time is Lightning's ``Timer`` (the callback ``max_time`` installs; a resumed run restores
        it from the checkpoint), or a clock started here when no trainer is attached.
        """
        o, budget = self.cfg.optim, max_time_seconds(self.cfg.trainer.max_time)
        floor = o.final_learning_rate / o.learning_rate
        elapsed, warmup = self._training_clock(), max(1, o.warmup_steps)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) * _half_cosine(elapsed() / budget, floor))

    def _training_clock(self):
        from lightning.pytorch.callbacks import Timer

        trainer = self._trainer
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None) if trainer is not None else None
        if timer is not None:
            return lambda: timer.time_elapsed("train")
        start = time.monotonic()
        return lambda: time.monotonic() - start

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Plain types only, so ``torch.load(weights_only=True)`` and ``checkpoint.load_model`` read it."""
        checkpoint["espcn_lab"] = {"config": to_dict(self.cfg), "degradation": self.degradation.to_dict()}
