"""Stopping a run on SIGINT, SIGTERM or SIGHUP the way Ctrl-C should: at a step boundary, state saved, status reported.

The first signal asks for a stop; every rank checks the request at the end of a training step (reduced
across ranks every ``every`` steps, so all ranks stop after the same step and no collective is left
waiting), saves ``last.ckpt``, and ``fit`` writes ``summary.json`` with status ``interrupted`` (SIGINT)
or ``terminated`` (SIGTERM) or ``hangup`` (SIGHUP: the terminal closed, an SSH session dropped) before
``espcn-lab fit`` exits 128 + the signal number (130, 143, 129). A second
signal ends the process at once, by that signal's default action. A signal the process was started
ignoring (``nohup``, a background job of a non-interactive shell) stays ignored.

Lightning has its own SIGTERM handling (it raises ``SIGTERMException``, a ``SystemExit`` that ends the
process with code 0 and skips the rest of ``fit``); while training, ``StopOnSignal`` puts ours back in
its place (Lightning registers its handler just before the fit loop starts).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import lightning as L
import torch

from espcn_lab.errors import STOP_SIGNALS

STATUS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}


class StopTraining(Exception):
    """Raised on every rank at the same step once a stop was requested; carries the signal number."""

    def __init__(self, signum: int):
        super().__init__(f"stop requested by {signal.Signals(signum).name}")
        self.signum = signum


class StopRequest:
    """Signal handlers that record the first SIGINT/SIGTERM (``signum``) and die on the second.

    ``install`` may run again (it does when Lightning has replaced a handler); ``restore`` puts back what
    was there before the first ``install``.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._saved: dict[int, object] = {}

    def handle(self, signum: int, _frame) -> None:
        if self.signum:  # asked twice: stop now, as if nothing had been installed
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print(f"espcn-lab: {signal.Signals(signum).name}: stopping after this step and saving last.ckpt "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if signum not in self._saved:
                self._saved[signum] = current
            if self._saved[signum] is not signal.SIG_IGN:
                signal.signal(signum, self.handle)

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._saved.clear()

    def __enter__(self) -> "StopRequest":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


class StopOnSignal(L.Callback):
    """Turns a ``StopRequest`` into ``StopTraining`` at a step boundary on every rank, and saves ``last.ckpt``."""

    def __init__(self, request: StopRequest, last: Path, every: int = 10):
        self.request, self.last, self.every = request, Path(last), max(1, every)
        self.agreed = 0  # the signal every rank knows of, waiting for a step that is not an epoch's last

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.request.install()  # after Lightning's own SIGTERM handler went in

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if not self.agreed:
            if trainer.world_size == 1:
                self.agreed = self.request.signum
            elif trainer.global_step % self.every == 0:  # one small all-reduce every few steps: the ranks agree
                signum = torch.tensor(self.request.signum, device=pl_module.device)
                self.agreed = int(trainer.strategy.reduce(signum, reduce_op="max"))
        # not after an epoch's last batch: its validation and epoch-end checkpoints come after this hook, and a
        # run resumed from there would skip them (early stopping would find no val/psnr_y)
        if self.agreed and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            raise StopTraining(self.agreed)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, StopTraining):  # every rank is here at the same step: the save's barrier holds
            # the batch is done (its step taken) but Lightning counts it completed only after this hook; count
            # it now, or a resumed run would train one batch too many in this epoch
            progress = trainer.fit_loop.epoch_loop.batch_progress
            if progress.current.completed < progress.current.processed:
                progress.increment_completed()
            trainer.save_checkpoint(str(self.last), weights_only=False)
