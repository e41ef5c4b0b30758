"""The callbacks of a run: best/last checkpoints (last also on a timer), early stopping, learning-rate logging, a stop on
SIGINT/SIGTERM, progress as lines (steps, steps/s, ETA) for step budgets and logs, and the weights' moving average.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import lightning as L

from espcn_lab.config import Config
from espcn_lab.train.signals import StopOnSignal, StopRequest

MONITOR = "val/psnr_y"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class StepProgress(L.Callback):
    """One line on stderr every ``every_s`` seconds and at the end: ``step 1200/4000 (30%), 21.3 steps/s,
    ETA 2:11, train/loss 0.0031`` (rank 0). Readable in a terminal and in a log file alike."""

    def __init__(self, every_s: float = 10.0):
        self.every_s = every_s
        self.start, self.first_step, self.next_line = 0.0, 0, 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.first_step = time.monotonic(), trainer.global_step
        self.next_line = self.start + self.every_s

    def line(self, trainer: L.Trainer) -> str:
        step, total = trainer.global_step, trainer.max_steps if trainer.max_steps > 0 else None
        rate = (step - self.first_step) / max(time.monotonic() - self.start, 1e-9)
        text = f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}"
        text += f", {rate:.1f} steps/s"
        if total and rate > 0:
            text += f", ETA {_clock((total - step) / rate)}"
        loss = trainer.callback_metrics.get("train/loss")
        return text + (f", train/loss {float(loss):.4f}" if loss is not None else "")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        if trainer.is_global_zero and (now >= self.next_line or trainer.global_step == trainer.max_steps):
            self.next_line = now + self.every_s
            print(self.line(trainer), file=sys.stderr, flush=True)


class TimedLast(L.pytorch.callbacks.ModelCheckpoint):
    """``last.ckpt`` every ``train_time_interval``, never after an epoch's last batch: that epoch's validation and
    checkpoints come after the hook, and a run resumed from there would skip them (as ``StopOnSignal`` does)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, *args, **kwargs)


def run_callbacks(cfg: Config, run_dir: Path, request: StopRequest, progress: str) -> list:
    """Callbacks for one run; ``progress`` is ``bar`` (Lightning's) or ``lines`` (``StepProgress``)."""
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
    )

    best = ModelCheckpoint(dirpath=str(run_dir), filename="best", monitor=MONITOR, mode="max", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    # last.ckpt: the latest state at every validation, and at a stop (max_time, early stopping). Not
    # `save_last=True` on the callback above: Lightning 2.6 rewrites that file only when the monitored
    # value improves, which made "last" the best-on-validation checkpoint.
    last = ModelCheckpoint(dirpath=str(run_dir), filename="last", monitor=None, save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    # and every run.checkpoint_every_min minutes of training: a run killed without a signal to catch (kill -9, OOM,
    # a lost node) resumes from at most that long ago, not from its last validation (hours apart on 50k images)
    timed = [TimedLast(dirpath=str(run_dir), filename="last", monitor=None, save_top_k=1, auto_insert_metric_name=False,
                       enable_version_counter=False, train_time_interval=timedelta(minutes=cfg.run.checkpoint_every_min))
             ] if cfg.run.checkpoint_every_min > 0 else []
    # checked when validation ends, not at every epoch end: a run stopped by trainer.max_steps before its first
    # validation would otherwise fail looking for val/psnr_y
    stop = EarlyStopping(monitor=MONITOR, mode="max", patience=cfg.optim.early_stop_patience, check_finite=False,
                         check_on_train_epoch_end=False)
    extra = [StepProgress()] if progress == "lines" else []
    if cfg.optim.ema_decay > 0:  # Lightning's: swaps the average in to validate, saves it as the checkpoint's
        from lightning.pytorch.callbacks import EMAWeightAveraging  # state_dict (the raw weights beside it, resumed)
        extra.append(EMAWeightAveraging(decay=cfg.optim.ema_decay))
    return [best, last, *timed, stop, LearningRateMonitor(logging_interval="epoch"),
            StopOnSignal(request, run_dir / "last.ckpt", every=min(10, cfg.trainer.log_every_n_steps)), *extra]
